//! `LoraConfig`: defaults, validation, serde, target-module matching.

#![allow(clippy::unwrap_used, clippy::panic)]

use graft_lora::{pattern_matches, LoraConfig, LoraError};
use proptest::prelude::*;

#[test]
fn defaults_follow_the_issue() {
    let c = LoraConfig::default();
    assert_eq!((c.r, c.alpha, c.dropout), (8, 16.0, 0.05));
    assert_eq!(c.target_modules, ["q_proj", "v_proj"]);
    assert_eq!(c.scaling(), 2.0);
    c.validate().unwrap();
    assert_eq!(LoraConfig::new(4, 12.0).scaling(), 3.0);
}

#[test]
fn default_targets_pick_q_and_v() {
    let c = LoraConfig::default();
    assert!(c.matches("model.layers.0.self_attn.q_proj"));
    assert!(c.matches("model.layers.29.self_attn.v_proj"));
    assert!(c.matches("q_proj"));
    for n in [
        "model.layers.0.self_attn.k_proj",
        "model.layers.0.self_attn.o_proj",
        "model.layers.0.mlp.up_proj",
        "model.layers.0.self_attn.q_proj_extra",
        "model.layers.0.self_attn.xq_proj",
        "lm_head",
    ] {
        assert!(!c.matches(n), "{n}");
    }
}

#[test]
fn custom_patterns() {
    let c = LoraConfig::default().with_target_modules([
        "mlp.up_proj",
        "model.layers.1.self_attn.*",
        "layers.?.mlp.down_proj",
    ]);
    assert!(c.matches("model.layers.0.mlp.up_proj"));
    assert!(!c.matches("model.layers.0.xmlp.up_proj"));
    assert!(c.matches("model.layers.1.self_attn.k_proj"));
    assert!(!c.matches("model.layers.0.self_attn.k_proj"));
    // Globs match the whole name, so a leading component must be covered.
    assert!(!c.matches("model.layers.3.mlp.down_proj"));
    assert!(pattern_matches(
        "*layers.?.mlp.down_proj",
        "model.layers.3.mlp.down_proj"
    ));
    assert!(!pattern_matches(
        "*layers.?.mlp.down_proj",
        "model.layers.13.mlp.down_proj"
    ));
    assert!(pattern_matches("*", "anything.at.all"));
    assert!(pattern_matches("a*b*c", "a.b.c"));
    assert!(!pattern_matches("a*b*c", "a.b.cd"));
    assert!(c.has_glob());
    assert!(!LoraConfig::default().has_glob());
}

#[test]
fn validation() {
    let field = |c: LoraConfig| match c.validate() {
        Err(LoraError::Config { field, .. }) => field,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert_eq!(field(LoraConfig::new(0, 16.0)), "r");
    assert_eq!(field(LoraConfig::new(8, 0.0)), "alpha");
    assert_eq!(field(LoraConfig::new(8, f64::NAN)), "alpha");
    assert_eq!(field(LoraConfig::default().with_dropout(1.0)), "dropout");
    assert_eq!(field(LoraConfig::default().with_dropout(-0.1)), "dropout");
    assert_eq!(
        field(LoraConfig::default().with_target_modules(Vec::<String>::new())),
        "target_modules"
    );
    assert_eq!(
        field(LoraConfig::default().with_target_modules([""])),
        "target_modules"
    );
}

#[test]
fn serde_defaults_and_peft_names() {
    let c: LoraConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, LoraConfig::default());
    let c: LoraConfig = serde_json::from_str(
        r#"{"r": 4, "lora_alpha": 12, "lora_dropout": 0.1, "target_modules": ["o_proj"]}"#,
    )
    .unwrap();
    assert_eq!(
        c,
        LoraConfig::new(4, 12.0)
            .with_dropout(0.1)
            .with_target_modules(["o_proj"])
    );
    let back: LoraConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

proptest! {
    #[test]
    fn plain_pattern_matches_on_component_boundary(
        prefix in proptest::collection::vec("[a-z0-9_]{1,6}", 0..4),
        last in "[a-z_]{1,8}",
        other in "[a-z_]{1,8}",
    ) {
        let mut parts = prefix.clone();
        parts.push(last.clone());
        let name = parts.join(".");
        prop_assert!(pattern_matches(&last, &name));
        prop_assert!(pattern_matches(&name, &name));
        prop_assert!(pattern_matches("*", &name));
        prop_assert_eq!(pattern_matches(&other, &name), other == last || name.ends_with(&format!(".{other}")));
        // A glob that is the name with one component replaced by * matches.
        let star = format!("*{last}");
        prop_assert!(pattern_matches(&star, &name));
        let q: String = name.chars().map(|_| '?').collect();
        prop_assert!(pattern_matches(&q, &name));
        let q_long = format!("{q}?");
        prop_assert!(!pattern_matches(&q_long, &name));
    }
}
