//! How every example ends: `fn main() -> ExitCode { cli::exit(run(Args::parse())) }`.

use std::error::Error;
use std::process::ExitCode;

/// Success, or the error as one `error: ...` line on stderr and a failing
/// exit status (no panic, no debug formatting).
pub fn exit(result: Result<(), Box<dyn Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
