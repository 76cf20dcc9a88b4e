//! The embedding-injection API on its own, and through SmolLM2 (scoring,
//! gradients) when the GGUF file is present.

#![cfg(feature = "tch")]
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use graft_lm::inject::{inject, prefix_mask, Injection};
use graft_lm::llama::{KvCache, Llama};
use graft_lm::LmError;
use tch::{Device, Kind, Tensor};

fn randn(shape: &[i64], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn(shape, (Kind::Float, Device::Cpu))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn additive_replace_and_prefix_do_what_they_say() {
    let _rng = global_rng();
    let e = randn(&[2, 4, 3], 1);
    let table = randn(&[5, 3], 2);
    let ids = Tensor::from_slice(&[0i64, 1, 2, 0, 4, 4, 3, 0]).view([2, 4]);
    let out = inject(&e, &[Injection::additive(&ids, &table, 0.5)]).unwrap();
    let want = &e + table.index_select(0, &ids.view([-1])).view([2, 4, 3]) * 0.5;
    assert!(max_diff(&out, &want) < 1e-7);

    let mask =
        Tensor::from_slice(&[false, true, false, false, false, false, false, true]).view([2, 4]);
    let vecs = randn(&[2, 3], 3);
    let out = inject(&e, &[Injection::replace(&mask, &vecs)]).unwrap();
    assert!(max_diff(&out.get(0).get(1), &vecs.get(0)) == 0.0);
    assert!(max_diff(&out.get(1).get(3), &vecs.get(1)) == 0.0);
    assert!(max_diff(&out.get(0).get(0), &e.get(0).get(0)) == 0.0);

    let prompt = randn(&[3, 3], 4);
    let out = inject(&e, &[Injection::prefix(&prompt)]).unwrap();
    assert_eq!(out.size(), [2, 7, 3]);
    assert!(max_diff(&out.narrow(1, 0, 3).get(1), &prompt) == 0.0);
    assert!(max_diff(&out.narrow(1, 3, 4), &e) == 0.0);
    let m = prefix_mask(&Tensor::ones([2, 4], (Kind::Int64, Device::Cpu)), 3).unwrap();
    assert_eq!(m.size(), [2, 7]);
}

#[test]
fn gradients_reach_every_injected_tensor() {
    let _rng = global_rng();
    let e = randn(&[1, 3, 4], 1);
    let table = randn(&[6, 4], 2).set_requires_grad(true);
    let vecs = randn(&[1, 4], 3).set_requires_grad(true);
    let prompt = randn(&[2, 4], 4).set_requires_grad(true);
    let ids = Tensor::from_slice(&[1i64, 5, 0]).view([1, 3]);
    let mask = Tensor::from_slice(&[false, false, true]).view([1, 3]);
    let out = inject(
        &e,
        &[
            Injection::additive(&ids, &table, 2.0),
            Injection::replace(&mask, &vecs),
            Injection::prefix(&prompt),
        ],
    )
    .unwrap();
    out.square().sum(Kind::Float).backward();
    for (name, t) in [("table", &table), ("vectors", &vecs), ("prompt", &prompt)] {
        assert!(
            t.grad().defined() && t.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0,
            "{name}"
        );
    }
    // Row 5 of the table was used at position 1 (not replaced): gradient
    // 2 * alpha * out there.
    let g = table.grad().get(5);
    let want = out.get(0).get(2 + 1) * 4.0;
    assert!(max_diff(&g, &want) < 1e-5);
}

#[test]
fn bad_shapes_are_typed_errors() {
    let _rng = global_rng();
    let e = randn(&[2, 4, 3], 1);
    let table = randn(&[5, 2], 2);
    let ids = Tensor::zeros([2, 4], (Kind::Int64, Device::Cpu));
    let wrong = |r: graft_lm::Result<Tensor>| matches!(r, Err(LmError::WrongType { .. }));
    assert!(wrong(inject(&e, &[Injection::additive(&ids, &table, 1.0)])));
    let mask = Tensor::ones([2, 4], (Kind::Bool, Device::Cpu));
    assert!(wrong(inject(
        &e,
        &[Injection::replace(&mask, &randn(&[7, 3], 1))]
    )));
    assert!(wrong(inject(&e, &[Injection::prefix(&randn(&[3, 2], 1))])));
    assert!(wrong(inject(&randn(&[4, 3], 1), &[])));
}

fn smollm2() -> Option<(Llama, tokenizers::Tokenizer)> {
    let f = common::smollm2_gguf()?;
    Some((
        Llama::from_gguf(&f, Device::Cpu).unwrap(),
        graft_lm::tokenizer::tokenizer_from_gguf(&f).unwrap(),
    ))
}

#[test]
fn smollm2_batched_scores_equal_one_by_one_and_rank_paris_first() {
    let _rng = global_rng();
    let Some((model, tok)) = smollm2() else {
        return;
    };
    let enc = |s: &str| tok.encode(s, false).unwrap().get_ids().to_vec();
    let prompt = enc("The capital of France is");
    let other = enc("Answer Yes or No. Is Paris in France?");
    let conts: Vec<Vec<u32>> = [" Paris", " Berlin", " Rome", " a city in Europe"]
        .iter()
        .map(|c| enc(c))
        .collect();
    let mut pairs: Vec<(&[u32], &[u32])> = conts
        .iter()
        .map(|c| (prompt.as_slice(), c.as_slice()))
        .collect();
    let yes = enc(" Yes");
    pairs.push((other.as_slice(), yes.as_slice()));
    let batched = model.score_continuations(&pairs).unwrap();
    for (i, p) in pairs.iter().enumerate() {
        let single = model.score_continuations(&[*p]).unwrap()[0];
        assert!(
            (single - batched[i]).abs() < 1e-3,
            "pair {i}: {single} vs {}",
            batched[i]
        );
    }
    assert!(
        batched[0] > batched[1] && batched[0] > batched[2],
        "{batched:?}"
    );
    // By hand for the one-token continuation: the log-softmax at the last prompt position.
    let ids =
        Tensor::from_slice(&prompt.iter().map(|&i| i64::from(i)).collect::<Vec<_>>()).view([1, -1]);
    let h = tch::no_grad(|| {
        model.forward_embeds(&model.embed(&ids).unwrap(), &mut KvCache::default(), None)
    })
    .unwrap();
    let lp = model
        .logits(&h.get(0).get(prompt.len() as i64 - 1))
        .unwrap()
        .log_softmax(-1, Kind::Float);
    assert!((lp.double_value(&[i64::from(conts[0][0])]) - batched[0]).abs() < 1e-4);
}

#[test]
fn smollm2_soft_prompt_gradients_flow_through_the_model() {
    let _rng = global_rng();
    let Some((model, tok)) = smollm2() else {
        return;
    };
    let ids: Vec<i64> = tok
        .encode("User likes <|im_start|> and", false)
        .unwrap()
        .get_ids()
        .iter()
        .map(|&i| i64::from(i))
        .collect();
    let t = Tensor::from_slice(&ids).view([1, -1]);
    // Replace the placeholder (<|im_start|>, id 1) with a trainable vector.
    let mask = t.eq(1);
    let soft = Tensor::zeros([1, 576], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let e = inject(
        &model.embed(&t).unwrap(),
        &[Injection::replace(&mask, &soft)],
    )
    .unwrap();
    let h = model
        .forward_embeds(&e, &mut KvCache::default(), None)
        .unwrap();
    model
        .logits(&h.select(1, -1))
        .unwrap()
        .log_softmax(-1, Kind::Float)
        .get(0)
        .get(42)
        .backward();
    assert!(soft.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn smollm2_beam_search_is_consistent_with_scoring_and_greedy() {
    let _rng = global_rng();
    use graft_lm::BeamConfig;
    let Some((model, tok)) = smollm2() else {
        return;
    };
    let prompt = tok
        .encode("The capital of France is", false)
        .unwrap()
        .get_ids()
        .to_vec();
    // One beam is greedy decoding.
    let greedy = model.generate_greedy(&prompt, 4, None).unwrap();
    let one = model
        .beam_search(
            &prompt,
            &BeamConfig {
                beams: 1,
                max_new: 4,
                num_return: 1,
                ..BeamConfig::default()
            },
        )
        .unwrap();
    assert_eq!(one[0].tokens, greedy);
    let cfg = BeamConfig {
        beams: 4,
        max_new: 4,
        eos: Some(2),
        length_penalty: 0.0,
        num_return: 4,
    };
    let hyps = model.beam_search(&prompt, &cfg).unwrap();
    assert_eq!(hyps.len(), 4);
    assert!(hyps.windows(2).all(|w| w[0].score >= w[1].score));
    // Each hypothesis' log-probability is what scoring its tokens gives.
    let pairs: Vec<(&[u32], &[u32])> = hyps
        .iter()
        .map(|h| (prompt.as_slice(), h.tokens.as_slice()))
        .collect();
    let scored = model.score_continuations(&pairs).unwrap();
    for (h, s) in hyps.iter().zip(&scored) {
        assert!(
            (h.log_prob - s).abs() < 2e-3,
            "{:?}: beam {} vs scored {s}",
            h.tokens,
            h.log_prob
        );
    }
    // With a length penalty of 0 the best beam is at least as likely as greedy.
    let g = model
        .score_continuations(&[(prompt.as_slice(), greedy.as_slice())])
        .unwrap()[0];
    assert!(hyps[0].log_prob >= g - 1e-4);
}

/// libtorch has one global CPU generator and the harness runs tests on
/// several threads: every test of this binary that seeds it or draws from
/// it (initialisation, dropout, sampling) holds this lock, so a seeded
/// section is never interleaved with another test's draws.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
