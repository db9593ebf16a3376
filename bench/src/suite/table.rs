//! The one table `all` prints: a row per figure with its same-run baseline, the
//! ratio, the target and whether it is met.

use std::fmt::Write as _;

/// Whether a row meets its target.
#[derive(Debug, Clone)]
pub enum Met {
    /// Measured and within the target.
    Yes,
    /// Measured and outside the target.
    No,
    /// Measured; the row has no target of its own (context for another row).
    Info,
    /// Not measured, and why.
    NotMeasured(String),
}

impl Met {
    /// `Yes` when `ok`, else `No`.
    pub fn from(ok: bool) -> Self {
        if ok {
            Self::Yes
        } else {
            Self::No
        }
    }

    fn label(&self) -> String {
        match self {
            Met::Yes => "yes".to_owned(),
            Met::No => "no".to_owned(),
            Met::Info => "-".to_owned(),
            Met::NotMeasured(why) => format!("not measured ({why})"),
        }
    }
}

/// One figure of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The measurement's number in the issue ("1", "4b", …).
    pub id: String,
    /// What is measured.
    pub what: String,
    /// The figure.
    pub value: String,
    /// The baseline measured in the same run, or "-".
    pub baseline: String,
    /// value / baseline (or the ratio the target speaks of), or "-".
    pub ratio: String,
    /// The target.
    pub target: String,
    /// Whether the target is met.
    pub met: Met,
}

impl Row {
    /// A row whose figure could not be taken.
    pub fn not_measured(id: &str, what: &str, target: &str, why: &str) -> Self {
        Self {
            id: id.to_owned(),
            what: what.to_owned(),
            value: "-".to_owned(),
            baseline: "-".to_owned(),
            ratio: "-".to_owned(),
            target: target.to_owned(),
            met: Met::NotMeasured(why.to_owned()),
        }
    }

    fn cells(&self) -> [String; 7] {
        [
            self.id.clone(),
            self.what.clone(),
            self.value.clone(),
            self.baseline.clone(),
            self.ratio.clone(),
            self.target.clone(),
            self.met.label(),
        ]
    }
}

const HEADER: [&str; 7] = [
    "#", "measure", "value", "baseline", "ratio", "target", "met",
];

/// The rows as a plain-text table with aligned columns.
pub fn text(rows: &[Row]) -> String {
    let cells: Vec<[String; 7]> = rows.iter().map(Row::cells).collect();
    let mut widths = HEADER.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&mut out, &HEADER.map(str::to_owned));
    line(&mut out, &widths.map(|w| "-".repeat(w)));
    for row in &cells {
        line(&mut out, row);
    }
    out
}

/// The rows as a Markdown table (pipes in cells escaped).
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", HEADER.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADER.len()));
    for row in rows {
        let cells: Vec<String> = row.cells().iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// A number with a sensible number of digits for the table.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_owned();
    }
    let a = x.abs();
    if a >= 1000.0 {
        // Thousands separated by a thin space, as the README's tables do.
        let s = format!("{:.0}", x);
        let (sign, digits) = s.split_at(usize::from(s.starts_with('-')));
        let mut grouped = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(' ');
            }
            grouped.push(ch);
        }
        format!("{sign}{grouped}")
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A ratio as "0.42x".
pub fn times(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}x"))
}
