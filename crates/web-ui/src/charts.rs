//! SVG charts drawn on the server (no script, no CDN): a line chart for values over time and a
//! horizontal bar chart. Pure functions from data to an SVG string; every label is XML-escaped,
//! so an API or client id cannot inject markup. Colours come from the stylesheet's palette.

use std::fmt::Write;

/// Series colours (accessible on white; the same order as the legends).
pub const PALETTE: &[&str] = &[
    "#2456c7", "#b3261e", "#1e7b3c", "#8a5a00", "#6b3fc4", "#00758f", "#c2185b", "#5b6676",
];

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 58.0;

/// Escapes text for SVG/XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A number for labels: integers as such, others with up to 2 decimals; thousands as `k`,
/// millions as `M`.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if a >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}")
    };
    s.replace(".0k", "k").replace(".0M", "M")
}

/// A "nice" upper bound of an axis (1, 2 or 5 × 10^n) at or above `max` (at least 1).
pub fn nice_max(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let exp = max.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * base >= max - 1e-9 {
            return m * base;
        }
    }
    10.0 * base
}

/// One line of a line chart: `values[i]` belongs to `x[i]` of the chart.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// One value per x position; `None` leaves a gap.
    pub values: Vec<Option<f64>>,
    /// Drawn dashed.
    pub dashed: bool,
}

/// A line chart of `lines` over the x positions `x` (unix seconds), with x labels made by
/// `x_label`, the y axis in `unit`, and `title` for screen readers.
pub fn line_chart(
    title: &str,
    x: &[i64],
    lines: &[Line],
    unit: &str,
    x_label: impl Fn(i64) -> String,
) -> String {
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let max = lines
        .iter()
        .flat_map(|l| l.values.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    let ymax = nice_max(max);
    let n = x.len().max(1);
    let px = |i: usize| {
        if n == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let py = |v: f64| TOP + plot_h - plot_h * (v / ymax);
    let mut s = String::with_capacity(4096);
    let _ = write!(
        s,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
    // Horizontal grid and y labels.
    for k in 0..=4 {
        let v = ymax * f64::from(k) / 4.0;
        let y = py(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{x2}" y2="{y:.1}" stroke="#d9dee6"/><text x="{tx}" y="{ty:.1}" text-anchor="end" font-size="11" fill="#5b6676">{label}</text>"##,
            x2 = W - RIGHT,
            tx = LEFT - 6.0,
            ty = y + 4.0,
            label = escape(&short_number(v)),
        );
    }
    let _ = write!(
        s,
        r##"<text x="12" y="{y}" font-size="11" fill="#5b6676" transform="rotate(-90 12 {y})" text-anchor="middle">{u}</text>"##,
        y = TOP + plot_h / 2.0,
        u = escape(unit)
    );
    // X axis with up to 6 labels.
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{y}" x2="{x2}" y2="{y}" stroke="#5b6676"/>"##,
        y = TOP + plot_h,
        x2 = W - RIGHT
    );
    let ticks = 6.min(n);
    for t in 0..ticks {
        let i = if ticks == 1 {
            0
        } else {
            t * (n - 1) / (ticks - 1)
        };
        if let Some(xv) = x.get(i) {
            let anchor = if t == 0 && ticks > 1 {
                "start"
            } else if t + 1 == ticks && ticks > 1 {
                "end"
            } else {
                "middle"
            };
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{}" text-anchor="{anchor}" font-size="11" fill="#5b6676">{}</text>"##,
                px(i),
                TOP + plot_h + 16.0,
                escape(&x_label(*xv))
            );
        }
    }
    // Lines (a single point is drawn as a dot).
    for (li, l) in lines.iter().enumerate() {
        let color = PALETTE[li % PALETTE.len()];
        let dash = if l.dashed {
            r#" stroke-dasharray="5 4""#
        } else {
            ""
        };
        let mut seg = String::new();
        let flush = |seg: &mut String, s: &mut String| {
            if !seg.is_empty() {
                let _ = write!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
                    seg.trim_end()
                );
                seg.clear();
            }
        };
        let pts: Vec<(usize, f64)> = l
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            .collect();
        if pts.len() == 1 {
            let (i, v) = pts[0];
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                px(i),
                py(v)
            );
        }
        for (i, v) in l.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(seg, "{:.1},{:.1} ", px(i), py(*v));
                }
                None => flush(&mut seg, &mut s),
            }
        }
        flush(&mut seg, &mut s);
    }
    if lines.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" fill="#5b6676">Nothing in this range.</text>"##,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    // Legend below the axis.
    let mut lx = LEFT;
    let ly = H - 14.0;
    for (li, l) in lines.iter().enumerate() {
        let color = PALETTE[li % PALETTE.len()];
        let label = escape(&l.label);
        let _ = write!(
            s,
            r##"<rect x="{lx:.1}" y="{:.1}" width="12" height="4" fill="{color}"/><text class="legend" x="{:.1}" y="{ly:.1}" font-size="12" fill="#1d2430">{label}</text>"##,
            ly - 5.0,
            lx + 16.0,
        );
        lx += 28.0 + 7.0 * l.label.chars().count().min(40) as f64;
    }
    s.push_str("</svg>");
    s
}

/// One bar: a label, its value and an optional second value drawn over it (e.g. errors).
#[derive(Debug, Clone)]
pub struct Bar {
    /// The label left of the bar.
    pub label: String,
    /// Its length.
    pub value: f64,
    /// A part of it drawn in the second colour.
    pub part: Option<f64>,
}

/// Horizontal bars, longest first as given, with the value at the end of each bar.
pub fn bar_chart(title: &str, bars: &[Bar], part_label: &str) -> String {
    // Narrower than the line charts: bar charts sit two to a row.
    const BW: f64 = 480.0;
    let row = 26.0;
    let label_w = 170.0;
    let value_w = 50.0;
    let h = TOP + row * bars.len().max(1) as f64 + 28.0;
    let plot_w = BW - label_w - value_w - RIGHT;
    let max = nice_max(bars.iter().fold(0.0f64, |a, b| a.max(b.value)));
    let mut s = String::with_capacity(2048);
    let _ = write!(
        s,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {BW} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
    if bars.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="13" fill="#5b6676">No requests in this range.</text>"##,
            LEFT,
            TOP + 14.0
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + row * i as f64;
        let w = plot_w * (b.value / max);
        let mut label = b.label.clone();
        if label.chars().count() > 21 {
            label = label.chars().take(20).collect::<String>() + "…";
        }
        let _ = write!(
            s,
            r##"<text class="bar-label" x="{lx}" y="{ty:.1}" text-anchor="end" font-size="12" fill="#1d2430"><title>{full}</title>{label}</text><rect x="{label_w}" y="{y:.1}" width="{w:.1}" height="18" rx="3" fill="#2456c7"/>"##,
            lx = label_w - 8.0,
            ty = y + 13.0,
            full = escape(&b.label),
            label = escape(&label),
        );
        if let Some(p) = b.part.filter(|p| *p > 0.0) {
            let pw = plot_w * (p.min(b.value) / max);
            let _ = write!(
                s,
                r##"<rect x="{label_w}" y="{y:.1}" width="{pw:.1}" height="18" rx="3" fill="#b3261e"/>"##
            );
        }
        let _ = write!(
            s,
            r##"<text class="bar-value" x="{vx:.1}" y="{ty:.1}" font-size="12" fill="#1d2430">{v}</text>"##,
            vx = label_w + w + 6.0,
            ty = y + 13.0,
            v = escape(&short_number(b.value)),
        );
    }
    if !bars.is_empty() && !part_label.is_empty() {
        let y = h - 12.0;
        let _ = write!(
            s,
            r##"<rect x="{label_w}" y="{:.1}" width="12" height="4" fill="#2456c7"/><text x="{:.1}" y="{y:.1}" font-size="12" fill="#1d2430">requests</text><rect x="{:.1}" y="{:.1}" width="12" height="4" fill="#b3261e"/><text x="{:.1}" y="{y:.1}" font-size="12" fill="#1d2430">{}</text>"##,
            y - 5.0,
            label_w + 16.0,
            label_w + 90.0,
            y - 5.0,
            label_w + 106.0,
            escape(part_label)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(
            escape("<script>\"x\" & 'y'\n"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39; "
        );
        let evil = "</text><script>alert(1)</script>";
        let svg = line_chart(
            evil,
            &[0, 60],
            &[Line {
                label: evil.into(),
                values: vec![Some(1.0), Some(2.0)],
                dashed: false,
            }],
            "<u>",
            |_| evil.to_owned(),
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(!svg.contains("<u>"));
        assert!(svg.contains("&lt;&#47;text&gt;") || svg.contains("&lt;/text&gt;"));
        let bars = bar_chart(
            evil,
            &[Bar {
                label: evil.into(),
                value: 3.0,
                part: None,
            }],
            "<b>",
        );
        assert!(
            !bars.contains("<script>") && !bars.contains("<b>"),
            "{bars}"
        );
    }

    #[test]
    fn axes_are_nice_and_numbers_short() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(10.0), 10.0);
        assert_eq!(nice_max(13.0), 20.0);
        assert_eq!(nice_max(420.0), 500.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
        assert_eq!(short_number(12.0), "12");
        assert_eq!(short_number(2.5), "2.50");
        assert_eq!(short_number(12_000.0), "12k");
        assert_eq!(short_number(12_345.0), "12.3k");
        assert_eq!(short_number(2_000_000.0), "2M");
    }

    #[test]
    fn a_line_chart_has_axes_lines_gaps_and_a_legend() {
        let svg = line_chart(
            "Requests",
            &[0, 60, 120, 180],
            &[
                Line {
                    label: "pay".into(),
                    values: vec![Some(1.0), Some(7.0), None, Some(3.0)],
                    dashed: false,
                },
                Line {
                    label: "errors".into(),
                    values: vec![Some(0.0); 4],
                    dashed: true,
                },
            ],
            "requests",
            |x| format!("t{x}"),
        );
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"aria-label="Requests""#));
        // A gap splits the first line in two; the second is one dashed line.
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        // Y axis up to 10 (nice bound of 7), x labels at the ends.
        assert!(svg.contains(">10</text>") && svg.contains(">t0</text>"));
        assert!(svg.contains(">t180</text>"));
        assert!(svg.contains(r#"class="legend""#) && svg.contains(">pay</text>"));
        // Highest point: 7 of 10 → y = TOP + plot_h × 0.3.
        let plot_h = H - TOP - BOTTOM;
        assert!(svg.contains(&format!(",{:.1}", TOP + plot_h * 0.3)));
    }

    #[test]
    fn bars_show_values_and_parts() {
        let svg = bar_chart(
            "Top clients",
            &[
                Bar {
                    label: "app-one".into(),
                    value: 9.0,
                    part: Some(2.0),
                },
                Bar {
                    label: "a-very-long-client-name-that-goes-on-and-on".into(),
                    value: 4.0,
                    part: None,
                },
            ],
            "errors",
        );
        assert!(svg.contains(">app-one</text>"));
        assert!(svg.contains(r#"class="bar-value""#) && svg.contains(">9</text>"));
        assert!(svg.contains(">a-very-long-client-n…</text>"), "{svg}");
        assert!(svg.contains("<title>a-very-long-client-name-that-goes-on-and-on</title>"));
        assert_eq!(
            svg.matches("#b3261e").count(),
            2,
            "one error part and its legend"
        );
        let no_lines = line_chart("Errors", &[0, 60], &[], "errors", |x| x.to_string());
        assert!(no_lines.contains("Nothing in this range."));
        let empty = bar_chart("Top", &[], "errors");
        assert!(empty.contains("No requests in this range."));
    }
}
