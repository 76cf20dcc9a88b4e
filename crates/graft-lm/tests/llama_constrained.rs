//! Constrained beam search and prefix scoring of the LLaMA decoder on the
//! tiny Hugging Face fixture (`tests/fixtures/llama_tiny`, random weights).

#![cfg(feature = "tch")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use graft_lm::llama::{KvCache, Llama};
use tch::{Device, Kind, Tensor};

fn tiny() -> Llama {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_tiny");
    Llama::from_hf_dir(dir, Device::Cpu).unwrap().0
}

/// Teacher-forced sum of log-probabilities of `cont` after `prompt`.
fn teacher_forced(m: &Llama, prompt: &[u32], cont: &[u32]) -> f64 {
    let ids: Vec<i64> = prompt.iter().chain(cont).map(|&t| i64::from(t)).collect();
    let n = ids.len() as i64;
    let logp = tch::no_grad(|| {
        let h = m
            .forward_embeds(
                &m.embed(&Tensor::from_slice(&ids).view([1, n])).unwrap(),
                &mut KvCache::default(),
                None,
            )
            .unwrap();
        m.logits(&h).unwrap().log_softmax(-1, Kind::Float)
    });
    let mut lp = 0.0;
    for (k, &t) in cont.iter().enumerate() {
        let pos = (prompt.len() + k - 1) as i64;
        lp += logp.get(0).get(pos).get(i64::from(t)).double_value(&[]);
    }
    lp
}

#[test]
fn constrained_beam_search_only_emits_allowed_sequences() {
    let m = tiny();
    let prompt = [5u32, 6, 7, 8];
    // Valid outputs: [3, 4, eos], [3, 9, eos], [12, eos].
    let valid: Vec<Vec<u32>> = vec![vec![3, 4, 2], vec![3, 9, 2], vec![12, 2]];
    let cfg = graft_lm::BeamConfig {
        beams: 5,
        max_new: 4,
        eos: Some(2),
        length_penalty: 1.0,
        num_return: 5,
    };
    let mut allowed = |prefix: &[u32]| {
        let mut next: Vec<u32> = valid
            .iter()
            .filter(|v| v.len() > prefix.len() && v.starts_with(prefix))
            .map(|v| v[prefix.len()])
            .collect();
        next.dedup();
        next
    };
    let hyps = m
        .beam_search_constrained(&prompt, &cfg, &mut allowed)
        .unwrap();
    assert_eq!(hyps.len(), 3, "{hyps:?}");
    for h in &hyps {
        assert!(valid.contains(&h.tokens), "{:?}", h.tokens);
        // Scores match teacher-forced log-probabilities.
        let lp = teacher_forced(&m, &prompt, &h.tokens);
        assert!((lp - h.log_prob).abs() < 1e-4, "{lp} vs {}", h.log_prob);
    }
    // The same search from the prompt's embeddings gives the same result.
    let ids: Vec<i64> = prompt.iter().map(|&t| i64::from(t)).collect();
    let x = m.embed(&Tensor::from_slice(&ids).view([1, 4])).unwrap();
    let again = m
        .beam_search_embeds_constrained(&x, &cfg, &mut allowed)
        .unwrap();
    assert_eq!(again, hyps);
    // Embeddings of the wrong shape are refused.
    assert!(m
        .beam_search_embeds_constrained(&x.squeeze_dim(0), &cfg, &mut allowed)
        .is_err());
}

#[test]
fn continuation_scores_match_teacher_forcing() {
    let m = tiny();
    let prompt = [1u32, 10, 11, 12, 13];
    let conts: Vec<Vec<u32>> = vec![vec![3, 4, 2], vec![7], vec![], vec![30, 31, 32, 2]];
    let refs: Vec<&[u32]> = conts.iter().map(Vec::as_slice).collect();
    let ids: Vec<i64> = prompt.iter().map(|&t| i64::from(t)).collect();
    let x = m.embed(&Tensor::from_slice(&ids).view([1, 5])).unwrap();
    for chunk in [1, 3, 16] {
        let got = m.continuation_log_probs(&x, &refs, chunk).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[2], 0.0);
        for (c, g) in conts.iter().zip(&got) {
            if !c.is_empty() {
                let want = teacher_forced(&m, &prompt, c);
                assert!((want - g).abs() < 1e-4, "{want} vs {g}");
            }
        }
    }
}

/// `named_parameters` lists each weight of the Hugging Face checkpoint once,
/// under its Hugging Face name and shape, each norm before the projections
/// it feeds.
#[test]
fn named_parameters_follow_the_hugging_face_checkpoint() {
    let m = tiny();
    let params = m.named_parameters();
    let layer0: Vec<&str> = params
        .iter()
        .filter_map(|(n, _)| n.strip_prefix("model.layers.0."))
        .collect();
    assert_eq!(
        layer0,
        [
            "input_layernorm.weight",
            "self_attn.q_proj.weight",
            "self_attn.k_proj.weight",
            "self_attn.v_proj.weight",
            "self_attn.o_proj.weight",
            "post_attention_layernorm.weight",
            "mlp.gate_proj.weight",
            "mlp.up_proj.weight",
            "mlp.down_proj.weight",
        ]
    );
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llama_tiny/model.safetensors");
    let shapes = |v: Vec<(String, Tensor)>| {
        let mut s: Vec<(String, Vec<i64>)> = v.into_iter().map(|(n, t)| (n, t.size())).collect();
        s.sort();
        s
    };
    assert_eq!(
        shapes(params),
        shapes(Tensor::read_safetensors(file).unwrap())
    );
}
