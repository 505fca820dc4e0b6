//! Verdicts on header values and on query and cookie names, kept from request to request. A
//! client sends the same `User-Agent`, `Accept` and `Accept-Language` on every request, most
//! clients of a site send one of a few dozen such values, and every request to a page uses the
//! same argument and cookie names, so each is judged once per thread instead of once per
//! request. Header values alone are half of the WAF's work on a typical browser GET.
//!
//! The table belongs to one [`super::Matcher`]: a reload compiles new matchers, whose tables
//! start empty, so a verdict never outlives the rules that gave it. It is per thread, so no
//! request waits on a lock. It is bounded: when full it is emptied, so values that never repeat
//! (an attacker's, say) cost a miss and an insert, and memory stays at a few hundred KB per
//! thread. The hasher is randomly seeded, so crafted values cannot make lookups slow.

use std::cell::RefCell;
use std::collections::HashMap;

use foldhash::fast::RandomState;
use thread_local::ThreadLocal;

use super::target::{Item, TargetKind};

/// Longest value whose verdict is kept (browser `User-Agent`s are 100–250 bytes).
pub(super) const VALUE_LEN: usize = 512;
/// Entries per thread before the table is emptied.
pub(super) const ENTRIES: usize = 1024;

/// The per-thread tables of one matcher.
#[derive(Default)]
pub(super) struct HeadMemo {
    tables: ThreadLocal<RefCell<Table>>,
}

#[derive(Default)]
struct Table {
    /// (kind, selector bits, value), encoded as bytes → rules that matched, before exclusions
    /// and conditions (those depend on the rest of the request).
    verdicts: HashMap<Box<[u8]>, Box<[usize]>, RandomState>,
    /// The key being looked up, reused.
    key: Vec<u8>,
}

impl HeadMemo {
    /// Whether the verdict on `item` is kept: header names and values, query argument names and
    /// cookie names, when not too long. These are what repeats from request to request: the
    /// client's headers, and the names the application's links, forms and cookies use. Values
    /// in the query and cookies vary from request to request, and body names can come by the
    /// thousand in one request, which would only churn the table.
    pub(super) fn keeps(item: &Item<'_>) -> bool {
        matches!(
            item.kind,
            TargetKind::Headers
                | TargetKind::HeaderNames
                | TargetKind::ArgsNames
                | TargetKind::CookieNames
        ) && item.value.len() <= VALUE_LEN
    }

    /// Fills `matched` with the rules that match `item` under selectors `sel` and returns true
    /// when this thread has judged the same value before. On false, the caller judges the value
    /// and hands its verdict to [`HeadMemo::keep`] before the next lookup.
    pub(super) fn lookup(&self, item: &Item<'_>, sel: &[u64], matched: &mut Vec<usize>) -> bool {
        let mut table = self.tables.get_or_default().borrow_mut();
        let Table { verdicts, key } = &mut *table;
        key.clear();
        key.push(item.kind as u8);
        for w in sel {
            key.extend_from_slice(&w.to_le_bytes());
        }
        key.extend_from_slice(item.value.as_bytes());
        match verdicts.get(key.as_slice()) {
            Some(rules) => {
                matched.extend_from_slice(rules);
                true
            }
            None => false,
        }
    }

    /// Keeps `matched` as the verdict on the value of the last lookup, which missed.
    pub(super) fn keep(&self, matched: &[usize]) {
        let mut table = self.tables.get_or_default().borrow_mut();
        let Table { verdicts, key } = &mut *table;
        if verdicts.len() >= ENTRIES {
            verdicts.clear();
        }
        verdicts.insert(key.as_slice().into(), matched.into());
    }

    /// Verdicts this thread holds.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.tables.get().map_or(0, |t| t.borrow().verdicts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::ENTRIES;
    use crate::waf::target::TargetSpec;
    use crate::waf::tests::{sample, waf, RULES};
    use crate::waf::{Exclusion, WafPolicy};

    #[test]
    fn verdicts_on_headers_and_names_are_kept_between_requests_but_applied_per_request() {
        let w = waf(RULES, &[1]);
        let kept = || w.matcher(1).unwrap().head_memo_len();
        let s = sample(
            "GET",
            "/",
            &[("User-Agent", "sqlmap/1.7"), ("Accept", "text/html")],
            None,
        );
        let policy = WafPolicy::default();
        let first = w.inspect_sample(&s, &policy);
        assert!(first.matched("scanner"), "{first:?}");
        let after_first = kept();
        assert_eq!(
            after_first, 1,
            "the User-Agent is kept; no rule looks at Accept"
        );
        // The same request again is judged from the table, with the same verdict and targets.
        let again = w.inspect_sample(&s, &policy);
        assert_eq!(kept(), after_first);
        assert_eq!(format!("{:?}", again.hits), format!("{:?}", first.hits));
        // An exclusion of the header still applies to a kept verdict.
        let excluding = WafPolicy {
            exclusions: vec![Exclusion {
                ids: vec!["scanner".into()],
                tags: vec![],
                targets: TargetSpec::parse("headers:user-agent").unwrap(),
            }],
            ..WafPolicy::default()
        };
        assert!(!w.inspect_sample(&s, &excluding).matched("scanner"));
        // The table is bounded: values that never repeat empty it instead of growing it.
        for i in 0..ENTRIES + 10 {
            let ua = format!("client-{i}");
            let s = sample("GET", "/", &[("User-Agent", &ua)], None);
            assert!(!w.inspect_sample(&s, &policy).matched("scanner"));
        }
        assert!(kept() <= ENTRIES, "{}", kept());
        assert!(w.inspect_sample(&s, &policy).matched("scanner"));
        // Query argument names are kept, their values are not (they vary from request to request).
        let before = kept();
        let q = sample("GET", "/?page=2&sort=price", &[], None);
        w.inspect_sample(&q, &policy);
        assert_eq!(kept(), before + 2, "the names page and sort");
        w.inspect_sample(&sample("GET", "/?page=3&sort=name", &[], None), &policy);
        assert_eq!(kept(), before + 2, "new values, the same names");
        // An attack in a name is caught the first time and every time after.
        let named = sample("GET", "/?1'+or+'1'%3d'1=x", &[], None);
        for _ in 0..2 {
            let insp = w.inspect_sample(&named, &policy);
            assert!(insp.matched("sqli"), "{insp:?}");
        }
    }
}
