//! The dataset arguments every example shares (`--data`, `--format`,
//! `--lenient`, `--columns`) and the one way they load a dataset.

use std::path::PathBuf;

use graft::data::formats::csv::CsvColumns;
use graft::data::{Dataset, Format, LoadOptions};

/// Where the data is and how to read it.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// Dataset folder (or RecBole `.inter` / CSV file).
    #[arg(long, default_value = ".cache/data/ml-100k")]
    pub data: PathBuf,
    /// Format (amazon-p5, movielens-100k, movielens-1m, movielens-25m,
    /// book-crossing, recbole, csv); detected from the files when omitted.
    #[arg(long)]
    pub format: Option<Format>,
    /// Skip malformed lines (and report them) instead of failing.
    #[arg(long)]
    pub lenient: bool,
    /// A CSV header with your own names: `user=NAME,item=NAME[,rating=NAME][,time=NAME]`
    /// (other columns are ignored).
    #[arg(long)]
    pub columns: Option<CsvColumns>,
}

impl DataArgs {
    /// The format (given or detected) and the loaded dataset.
    pub fn load(&self) -> graft::data::Result<(Format, Dataset)> {
        let format = match self.format {
            Some(f) => f,
            None => Format::detect(&self.data)?,
        };
        let mut opts = if self.lenient {
            LoadOptions::lenient()
        } else {
            LoadOptions::default()
        };
        opts.csv_columns = self.columns.clone();
        Ok((format, graft::data::load(format, &self.data, &opts)?))
    }
}
