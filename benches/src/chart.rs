//! One SVG chart of a bench run: per scenario, circuit's rows beside each
//! peer's, as bars of ns/op on a log scale (peers differ by three orders of
//! magnitude), labelled with ns/op and, when counted, instructions per call.
//! A plain string writer: no plotting crate for a handful of rectangles.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The scenarios charted: a title and the criterion id prefix and suffix of
/// its rows (`prefix<name>suffix`).
pub const SCENARIOS: &[(&str, &str, &str)] = &[
    ("closed call, 1 thread", "closed/", ""),
    ("rejected while OPEN, 1 thread", "rejected/", ""),
    (
        "closed call, 2 threads on one breaker (per op per thread)",
        "closed_threads/",
        "/2",
    ),
    (
        "rejected while OPEN, 2 threads (per op per thread)",
        "rejected_threads/",
        "/2",
    ),
];

const WIDTH: f64 = 900.0;
const LABEL: f64 = 290.0;
const BAR: f64 = 16.0;
const GAP: f64 = 4.0;
const HEADER: f64 = 26.0;

/// One bar: its name, ns/op and, when known, instructions per call.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Row name within the scenario (`circuit_consecutive`, `recloser`).
    pub name: String,
    /// Nanoseconds per operation.
    pub ns: f64,
    /// Instructions per call, if counted.
    pub instructions: Option<f64>,
}

/// The bars of each scenario, from a run's ns/op by criterion id and
/// instructions per call by the same ids (1-thread scenarios only).
pub fn scenarios(
    ns: &BTreeMap<String, f64>,
    instructions: &BTreeMap<String, f64>,
) -> Vec<(&'static str, Vec<Bar>)> {
    SCENARIOS
        .iter()
        .map(|&(title, prefix, suffix)| {
            let bars = ns
                .iter()
                .filter_map(|(id, &v)| {
                    let name = id.strip_prefix(prefix)?.strip_suffix(suffix)?;
                    (!name.contains('/') && v > 0.0).then(|| Bar {
                        name: name.to_string(),
                        ns: v,
                        // Counted on one thread: shown on 1-thread rows only.
                        instructions: suffix
                            .is_empty()
                            .then(|| instructions.get(id).copied())
                            .flatten(),
                    })
                })
                .collect();
            (title, bars)
        })
        .filter(|(_, bars): &(_, Vec<Bar>)| !bars.is_empty())
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG document for `scenarios`.
pub fn svg(title: &str, scenarios: &[(&str, Vec<Bar>)]) -> String {
    let all: Vec<f64> = scenarios
        .iter()
        .flat_map(|(_, b)| b.iter().map(|b| b.ns))
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(0.1);
    let hi = all.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let (l0, l1) = (lo.log10().floor(), hi.log10().ceil());
    let span = WIDTH - LABEL - 170.0;
    let x = |v: f64| LABEL + (v.max(lo).log10() - l0) / (l1 - l0) * span;
    let rows: usize = scenarios.iter().map(|(_, b)| b.len()).sum();
    let height = 40.0 + scenarios.len() as f64 * (HEADER + GAP) + rows as f64 * (BAR + GAP) + 30.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect fill="white" width="{WIDTH}" height="{height}"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let mut y = 40.0;
    for (name, bars) in scenarios {
        let _ = writeln!(
            s,
            r#"<text x="10" y="{:.1}" font-weight="bold">{}</text>"#,
            y + 16.0,
            escape(name)
        );
        y += HEADER + GAP;
        for b in bars {
            let circuit = b.name.starts_with("circuit");
            let fill = if circuit { "#1f77b4" } else { "#aaaaaa" };
            let w = (x(b.ns) - LABEL).max(1.0);
            let label = match b.instructions {
                Some(i) => format!("{:.1} ns, {i:.0} instr", b.ns),
                None => format!("{:.1} ns", b.ns),
            };
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{LABEL}" y="{y:.1}" width="{w:.1}" height="{BAR}" fill="{fill}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                LABEL - 6.0,
                y + BAR - 4.0,
                escape(&b.name),
                LABEL + w + 4.0,
                y + BAR - 4.0,
                escape(&label)
            );
            y += BAR + GAP;
        }
    }
    // The log axis: one tick per decade.
    let mut d = l0;
    while d <= l1 {
        let v = 10f64.powf(d);
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="34" x2="{0:.1}" y2="{1:.1}" stroke="#dddddd"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle" fill="#666666">{3} ns</text>"##,
            x(v),
            y,
            y + 14.0,
            v
        );
        d += 1.0;
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
        let ns = [
            ("closed/circuit_consecutive", 6.0),
            ("closed/recloser", 10.0),
            ("closed_threads/circuit_consecutive/1", 6.5),
            ("closed_threads/circuit_consecutive/2", 9.0),
            ("closed_threads/recloser/2", 130.0),
            ("floor/fetch_add", 2.0),
        ];
        let instr = [
            ("closed/circuit_consecutive", 91.0),
            ("closed/recloser", 131.0),
        ];
        let m = |v: &[(&str, f64)]| v.iter().map(|&(k, x)| (k.to_string(), x)).collect();
        (m(&ns), m(&instr))
    }

    #[test]
    fn scenarios_pick_their_rows_and_instructions() {
        let (ns, instr) = run();
        let s = scenarios(&ns, &instr);
        let titles: Vec<&str> = s.iter().map(|(t, _)| *t).collect();
        assert_eq!(titles, [SCENARIOS[0].0, SCENARIOS[2].0]);
        let closed = &s[0].1;
        assert_eq!(closed.len(), 2);
        assert_eq!(closed[0].name, "circuit_consecutive");
        assert_eq!(closed[0].instructions, Some(91.0));
        let threads = &s[1].1;
        assert_eq!(
            threads.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
            ["circuit_consecutive", "recloser"]
        );
        assert_eq!(threads[0].ns, 9.0);
        assert_eq!(threads[0].instructions, None, "counted on one thread");
    }

    #[test]
    fn svg_has_one_bar_per_row_and_escapes_names() {
        let (ns, instr) = run();
        let doc = svg("a <run> & more", &scenarios(&ns, &instr));
        assert!(doc.starts_with("<svg") && doc.ends_with("</svg>\n"));
        assert_eq!(doc.matches("<rect x=").count(), 4);
        assert!(doc.contains("a &lt;run&gt; &amp; more"));
        assert!(doc.contains("6.0 ns, 91 instr"));
        // Longer times draw longer bars (log scale, monotone).
        let widths: Vec<f64> = doc
            .match_indices(r#"width=""#)
            .skip(2) // the document and its background
            .map(|(i, _)| {
                let rest = &doc[i + 7..];
                rest[..rest.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(widths.len(), 4);
        assert!(widths[0] < widths[1], "{widths:?}");
        assert!(widths[2] < widths[3], "{widths:?}");
    }
}
