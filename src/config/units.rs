//! Human-friendly units in config files: durations (`250ms`, `5s`, `1m`, `1h`) and byte sizes
//! (`512`, `64KiB`, `1MiB`, `10kB`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written with a unit, such as `250ms`, `5s`, `2m` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `text`; a bare number is refused so that `timeout: 5` cannot mean two things.
    pub fn parse(text: &str) -> Result<HumanDuration, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {t:?} needs a unit: ms, s, m or h (e.g. \"5s\")"))?;
        let (num, unit) = t.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("duration {t:?} does not start with a number"))?;
        let secs = match unit.trim() {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            other => {
                return Err(format!(
                    "duration {t:?} has unknown unit {other:?}; use ms, s, m or h"
                ))
            }
        };
        if !secs.is_finite() || !(0.0..=86_400.0 * 366.0).contains(&secs) {
            return Err(format!("duration {t:?} is out of range"));
        }
        Ok(HumanDuration(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        match v {
            serde_yaml::Value::String(s) => {
                HumanDuration::parse(&s).map_err(serde::de::Error::custom)
            }
            other => Err(serde::de::Error::custom(format!(
                "expected a duration such as \"5s\" or \"250ms\", found {}",
                describe(&other)
            ))),
        }
    }
}

/// A size in bytes, written as a number or with a unit (`64KiB`, `1MiB`, `10kB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `text` such as `65536`, `64KiB`, `1 MiB` or `10kB`.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("size {t:?} does not start with a whole number"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "kB" | "KB" => 1000,
            "KiB" => 1024,
            "MB" => 1_000_000,
            "MiB" => 1024 * 1024,
            "GB" => 1_000_000_000,
            "GiB" => 1024 * 1024 * 1024,
            other => {
                return Err(format!(
                    "size {t:?} has unknown unit {other:?}; use B, KiB, MiB, GiB, kB, MB or GB"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size {t:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        match v {
            serde_yaml::Value::Number(n) => n
                .as_u64()
                .map(ByteSize)
                .ok_or_else(|| serde::de::Error::custom("a size must be a whole number of bytes")),
            serde_yaml::Value::String(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "expected a size such as 65536 or \"64KiB\", found {}",
                describe(&other)
            ))),
        }
    }
}

/// Names the kind of a YAML value for error messages.
pub fn describe(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "nothing",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            HumanDuration::parse("250ms").unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(
            HumanDuration::parse("5s").unwrap().0,
            Duration::from_secs(5)
        );
        assert_eq!(
            HumanDuration::parse("1.5s").unwrap().0,
            Duration::from_millis(1500)
        );
        assert_eq!(
            HumanDuration::parse("2m").unwrap().0,
            Duration::from_secs(120)
        );
        assert_eq!(
            HumanDuration::parse("1h").unwrap().0,
            Duration::from_secs(3600)
        );
        assert!(HumanDuration::parse("5")
            .unwrap_err()
            .contains("needs a unit"));
        assert!(HumanDuration::parse("5 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(HumanDuration::parse("s").is_err());
        assert_eq!(
            HumanDuration::parse("1500ms").unwrap().to_string(),
            "1500ms"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("65536").unwrap().0, 65536);
        assert_eq!(ByteSize::parse("64KiB").unwrap().0, 65536);
        assert_eq!(ByteSize::parse("1 MiB").unwrap().0, 1 << 20);
        assert_eq!(ByteSize::parse("10kB").unwrap().0, 10_000);
        assert!(ByteSize::parse("10 apples").is_err());
        assert!(ByteSize::parse("99999999999999999999GiB").is_err());
    }
}
