//! How regex rules are cut into sets, and which texts and values each set is run on.

use super::tests::{sample, waf};
use super::*;

#[test]
fn many_rules_share_one_scan() {
    // 500 regex rules on the same target and chain compile into a few sets, not 500 scans.
    let mut y = String::from("rules:\n");
    for i in 0..500 {
        y.push_str(&format!(
            "  - {{ id: r{i}, description: d, targets: [args], transforms: [lowercase], operator: {{ regex: 'token{i}x' }} }}\n"
        ));
    }
    let w = waf(&y, &[1]);
    let s = sample("GET", "/?a=TOKEN123X&b=token499x", &[], None);
    let insp = w.inspect_sample(&s, &WafPolicy::default());
    let mut ids: Vec<&str> = insp.hits.iter().map(|h| &*h.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec!["r123", "r499"]);
}

#[test]
fn each_set_sees_the_texts_of_its_own_chains_and_the_values_of_its_own_targets() {
    // Forty rules over four chains and two targets fill several sets, some holding rules of
    // more than one chain: a rule must match on the text its own chain gave, wherever its set
    // is, and never on another chain's text or another target's value.
    let chains = [
        "[]",
        "[lowercase]",
        "[url-decode]",
        "[url-decode, lowercase]",
    ];
    let mut y = String::from("rules:\n");
    for i in 0..40 {
        let chain = chains[i % 4];
        let target = if i % 3 == 0 { "[\"args:q\"]" } else { "[args]" };
        y.push_str(&format!(
            "  - {{ id: r{i}, description: d, targets: {target}, transforms: {chain}, operator: {{ regex: '^(?:Ab|ab|A%62|a%62)$' }} }}\n"
        ));
    }
    let w = waf(&y, &[1]);
    let ids = |target: &str| {
        let s = sample("GET", target, &[], None);
        let mut ids: Vec<usize> = w
            .inspect_sample(&s, &WafPolicy::default())
            .hits
            .iter()
            .map(|h| h.id[1..].parse().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    };
    let of = |keep: &dyn Fn(usize) -> bool| (0..40).filter(|&i| keep(i)).collect::<Vec<_>>();
    // "A%62": raw text "A%62", lowercased "a%62", decoded "Ab", decoded and lowercased "ab";
    // each chain gives a text the pattern takes.
    assert_eq!(ids("/?q=A%2562"), of(&|_| true));
    assert_eq!(ids("/?x=A%2562"), of(&|i| i % 3 != 0));
    // "AB": only the lowercasing chains give a text the pattern takes ("ab").
    assert_eq!(ids("/?q=AB"), of(&|i| i % 2 == 1));
    assert_eq!(ids("/?x=AB"), of(&|i| i % 2 == 1 && i % 3 != 0));
    // "A%2b": raw and lowercased texts miss, decoded "A+" misses.
    assert_eq!(ids("/?q=A%252b"), Vec::<usize>::new());
}

#[test]
fn literal_led_patterns_are_told_apart() {
    use super::matcher::literal_led;
    for p in [
        r"select\s+\w+",
        r"(?:wso\d*|c99)\.php",
        r"token12x",
        r"(?:foo|)bar",
        r"(?:^|/)etc/passwd",
    ] {
        assert!(literal_led(p), "{p}");
    }
    // A start that can be empty, a class, a literal shorter than three bytes, or no pattern.
    for p in [
        r"\bon\w+=",
        r"[a-z]+foo",
        r"ab\w+",
        r"(?:foo|)\w",
        "(unclosed",
    ] {
        assert!(!literal_led(p), "{p}");
    }
}
