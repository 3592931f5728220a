//! The benchmarks' markdown tables: one row per figure, a column per server, and Pyrite's
//! value (the first column) as a ratio of each peer's.

use super::servers::Kind;

/// One figure for each server of a table (in the table's order, Pyrite first); None where it
/// does not apply.
pub struct Row {
    pub name: String,
    pub values: Vec<Option<f64>>,
    /// How to print a value.
    pub format: fn(f64) -> String,
    /// Whether ratios of the values mean anything (not for yes/no figures).
    pub ratios: bool,
}

impl Row {
    pub fn new(name: impl Into<String>, values: impl Into<Vec<Option<f64>>>, format: fn(f64) -> String) -> Row {
        Row { name: name.into(), values: values.into(), format, ratios: true }
    }

    fn cell(&self, v: Option<f64>) -> String {
        v.map(self.format).unwrap_or_else(|| "n/a".to_string())
    }

    fn ratio(&self, peer: usize) -> String {
        match (self.values.first().copied().flatten(), self.values.get(peer).copied().flatten()) {
            (Some(ours), Some(theirs)) if theirs != 0.0 && self.ratios => format!("{:.2}", ours / theirs),
            _ => "–".into(),
        }
    }
}

pub fn integer(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

pub fn mib(v: f64) -> String {
    format!("{:.0} MiB", v / (1024.0 * 1024.0))
}

pub fn bytes(v: f64) -> String {
    format!("{v:.0} B")
}

pub fn two_decimals(v: f64) -> String {
    format!("{v:.2}")
}

pub fn millis(v: f64) -> String {
    format!("{:.1} ms", v * 1e3)
}

pub fn seconds(v: f64) -> String {
    format!("{v:.2} s")
}

/// A share as a percentage.
pub fn percent(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

pub fn yes_no(v: f64) -> String {
    if v > 0.0 { "yes" } else { "no" }.into()
}

/// The table, in markdown, with a column for each of `servers` (Pyrite first) and Pyrite's
/// ratio to each of the others.
pub fn table(servers: &[Kind], rows: &[Row]) -> String {
    let names: Vec<&str> = servers.iter().map(|k| k.name()).collect();
    let ratios: Vec<String> = names[1..].iter().map(|n| format!("{} / {n}", names[0])).collect();
    let mut out = format!("| figure | {} | {} |\n", names.join(" | "), ratios.join(" | "));
    out.push_str(&format!("| --- |{}\n", " ---: |".repeat(2 * names.len() - 1)));
    for r in rows {
        let cells: Vec<String> = (0..names.len()).map(|i| r.cell(r.values.get(i).copied().flatten())).collect();
        let ratios: Vec<String> = (1..names.len()).map(|i| r.ratio(i)).collect();
        out.push_str(&format!("| {} | {} | {} |\n", r.name, cells.join(" | "), ratios.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_values_and_ratios_against_each_peer() {
        let rows = [
            Row::new("samples", [Some(1_234_567.0), Some(2_469_134.0), None], integer),
            Row::new("rss", [Some(100.0 * 1048576.0), Some(400.0 * 1048576.0), Some(50.0 * 1048576.0)], mib),
        ];
        let t = table(&Kind::ALL, &rows);
        assert!(t.contains("| samples | 1,234,567 | 2,469,134 | n/a | 0.50 | – |"), "{t}");
        assert!(t.contains("| rss | 100 MiB | 400 MiB | 50 MiB | 0.25 | 2.00 |"), "{t}");
        let two = table(&[Kind::Pyrite, Kind::Prometheus], &rows[..1]);
        assert!(
            two.starts_with("| figure | pyrite | prometheus | pyrite / prometheus |\n| --- | ---: | ---: | ---: |\n"),
            "{two}"
        );
        assert!(two.contains("| samples | 1,234,567 | 2,469,134 | 0.50 |"), "{two}");
    }
}
