//! The Prometheus text exposition format 0.0.4, written by hand: what a
//! host's and the control plane's `GET /metrics` answer.
//!
//! Owns: [`Exposition`] (`# HELP`/`# TYPE` lines, label escaping, counters,
//! gauges and cumulative histograms), [`Value`] and [`CONTENT_TYPE`].
//! Does not own: which metrics exist or where their counts live (each
//! process renders its own).
//!
//! Invariants: histogram buckets are cumulative and end with `le="+Inf"`
//! equal to `_count`.

use std::fmt::Write;
use std::time::Duration;

/// The Content-Type of a scrape.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The kind of a metric family (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A histogram's state: upper bounds in seconds, per-bucket (not
/// cumulative) counts with one extra slot for values above the last bound,
/// and the sum of every observation.
#[derive(Debug, Clone, Copy)]
pub struct HistogramValue<'a> {
    pub bounds: &'a [f64],
    pub buckets: &'a [u64],
    pub sum: Duration,
}

/// A text exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", value.into());
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], value: HistogramValue<'_>) {
        let mut cumulative = 0u64;
        for (i, count) in value.buckets.iter().enumerate() {
            cumulative += count;
            let le = match value.bounds.get(i) {
                Some(bound) => Value::F64(*bound).to_string(),
                None => "+Inf".to_owned(),
            };
            let _ = write!(self.out, "{name}_bucket");
            write_labels(&mut self.out, labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_sum");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", Value::F64(value.sum.as_secs_f64()));
        let _ = write!(self.out, "{name}_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {cumulative}");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample value: integers print exactly, floats in Prometheus spelling.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    U64(u64),
    F64(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::U64(v)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::U64(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::F64(v)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Value::U64(v) => write!(f, "{v}"),
            Value::F64(v) if v.is_nan() => f.write_str("NaN"),
            Value::F64(v) if v == f64::INFINITY => f.write_str("+Inf"),
            Value::F64(v) if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            Value::F64(v) => write!(f, "{v}"),
        }
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_escapes_and_cumulative_buckets() {
        let mut x = Exposition::new();
        x.family("t_total", Kind::Counter, "A counter.\nSecond line \\ here.");
        x.sample("t_total", &[("db", "a\"b\\c\nd"), ("k", "v")], 3u64);
        x.family("g", Kind::Gauge, "A gauge.");
        x.sample("g", &[], 0.25);
        x.family("h_seconds", Kind::Histogram, "A histogram.");
        x.histogram(
            "h_seconds",
            &[("db", "x")],
            HistogramValue {
                bounds: &[0.001, 0.5, 1.0],
                buckets: &[2, 0, 3, 1],
                sum: Duration::from_millis(1500),
            },
        );
        let text = x.finish();
        let want = "\
# HELP t_total A counter.\\nSecond line \\\\ here.
# TYPE t_total counter
t_total{db=\"a\\\"b\\\\c\\nd\",k=\"v\"} 3
# HELP g A gauge.
# TYPE g gauge
g 0.25
# HELP h_seconds A histogram.
# TYPE h_seconds histogram
h_seconds_bucket{db=\"x\",le=\"0.001\"} 2
h_seconds_bucket{db=\"x\",le=\"0.5\"} 2
h_seconds_bucket{db=\"x\",le=\"1\"} 5
h_seconds_bucket{db=\"x\",le=\"+Inf\"} 6
h_seconds_sum{db=\"x\"} 1.5
h_seconds_count{db=\"x\"} 6
";
        assert_eq!(text, want);
    }

    #[test]
    fn special_floats() {
        assert_eq!(Value::F64(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(Value::F64(f64::NAN).to_string(), "NaN");
        assert_eq!(Value::F64(0.0001).to_string(), "0.0001");
        assert_eq!(Value::U64(7).to_string(), "7");
    }
}
