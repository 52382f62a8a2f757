//! The Levey-Jennings chart (issue 13) as SVG: values over time for one instrument, test,
//! level and lot; the target mean and ±1, ±2, ±3 SD lines (step-wise where the target
//! changed: limits change prospectively); warnings and rejected runs marked with the rules
//! they broke; corrective actions as annotated vertical lines. Coordinates are computed with
//! exact decimals and written to 0.1 px.

use std::fmt::Write as _;
use std::str::FromStr;

use aliquot_app::qc::ChartData;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;

const WIDTH: i64 = 960;
const HEIGHT: i64 = 400;
const LEFT: i64 = 80;
const RIGHT: i64 = 90;
const TOP: i64 = 56;
const BOTTOM: i64 = 56;

/// Escapes text for SVG content and attributes.
fn esc(s: &str) -> String {
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

fn px(d: Decimal) -> String {
    d.round_dp(1).normalize().to_string()
}

fn dec(s: &str) -> Option<Decimal> {
    Decimal::from_str(s).ok()
}

/// One point with its target, parsed.
struct P<'a> {
    at: Timestamp,
    value: Decimal,
    mean: Decimal,
    sd: Decimal,
    status: &'a str,
    rules: &'a [String],
    run_id: i64,
    text: &'a str,
}

/// Renders the chart (a self-contained SVG document).
pub fn render(data: &ChartData, tz: &TimeZone) -> String {
    let points: Vec<P<'_>> = data
        .points
        .iter()
        .filter_map(|p| {
            Some(P {
                at: p.at,
                value: dec(&p.value)?,
                mean: dec(&p.mean)?,
                sd: dec(&p.sd)?,
                status: &p.status,
                rules: &p.rules,
                run_id: p.run_id,
                text: &p.value,
            })
        })
        .collect();
    let plot_w = Decimal::from(WIDTH - LEFT - RIGHT);
    let plot_h = Decimal::from(HEIGHT - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"DejaVu Sans, Arial, sans-serif\" \
         font-size=\"12\" role=\"img\" aria-labelledby=\"t\">"
    );
    let title = format!(
        "{} on {} — level {}{}{}",
        data.test,
        data.instrument,
        data.level,
        data.lot
            .as_deref()
            .map(|l| format!(", lot {l}"))
            .unwrap_or_default(),
        data.material
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    let period = format!(
        "{} to {}",
        data.from.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M"),
        data.to.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M")
    );
    let _ = write!(
        svg,
        "<title id=\"t\">Levey-Jennings chart: {}</title>\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"16\" font-weight=\"bold\" fill=\"#1a1a1a\">{}</text>\
         <text x=\"{LEFT}\" y=\"42\" fill=\"#555555\">{} · {} values</text>",
        esc(&title),
        esc(&title),
        esc(&period),
        points.len()
    );
    let Some(last) = points.last() else {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555555\" font-size=\"14\">\
             No control values of this level in the period</text></svg>",
            WIDTH / 2,
            HEIGHT / 2
        );
        return svg;
    };
    // The y range: the latest target's mean ± 4 SD, widened to every point and line.
    let four = Decimal::from(4);
    let mut lo = last.mean - four * last.sd;
    let mut hi = last.mean + four * last.sd;
    for p in &points {
        lo = lo.min(p.value).min(p.mean - four * p.sd);
        hi = hi.max(p.value).max(p.mean + four * p.sd);
    }
    if hi <= lo {
        hi = lo + Decimal::ONE;
    }
    let t0 = points.first().map_or(data.from, |p| p.at).min(data.from);
    // A margin on the right, so the latest point and its rules clear the frame.
    let t1 = data.to.max(last.at);
    let width = (t1.as_microsecond() - t0.as_microsecond()).max(1);
    let span = Decimal::from(width + width / 30);
    let x = |t: Timestamp| {
        Decimal::from(LEFT)
            + plot_w * Decimal::from(t.as_microsecond() - t0.as_microsecond()) / span
    };
    let y = |v: Decimal| Decimal::from(TOP) + plot_h * (hi - v) / (hi - lo);
    // Frame.
    let _ = write!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999999\"/>",
        WIDTH - LEFT - RIGHT,
        HEIGHT - TOP - BOTTOM
    );
    // Day ticks: at most 10 labels.
    let days = (t1.as_second() - t0.as_second()) / 86_400 + 1;
    let step = (days / 10).max(1);
    let mut day = t0.to_zoned(tz.clone()).date();
    let end = t1.to_zoned(tz.clone()).date();
    let mut i = 0;
    while day <= end {
        if i % step == 0
            && let Ok(z) = day.to_zoned(tz.clone())
        {
            let t = z.timestamp();
            if t >= t0 {
                let xx = px(x(t));
                let _ = write!(
                    svg,
                    "<line x1=\"{xx}\" y1=\"{}\" x2=\"{xx}\" y2=\"{}\" stroke=\"#cccccc\"/>\
                     <text x=\"{xx}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333333\">{}</text>",
                    HEIGHT - BOTTOM,
                    HEIGHT - BOTTOM + 5,
                    HEIGHT - BOTTOM + 20,
                    day.strftime("%m-%d")
                );
            }
        }
        i += 1;
        match day.tomorrow() {
            Ok(d) => day = d,
            Err(_) => break,
        }
    }
    // Limit lines per segment of constant target; labels at the right end of the last one.
    let lines: [(i64, &str, &str, &str); 7] = [
        (3, "#c62828", "", "+3 SD"),
        (2, "#ef6c00", "6 4", "+2 SD"),
        (1, "#9e9e9e", "2 4", "+1 SD"),
        (0, "#2e7d32", "", "mean"),
        (-1, "#9e9e9e", "2 4", "−1 SD"),
        (-2, "#ef6c00", "6 4", "−2 SD"),
        (-3, "#c62828", "", "−3 SD"),
    ];
    let mut start = 0;
    while start < points.len() {
        let (mean, sd) = (points[start].mean, points[start].sd);
        let mut end_i = start;
        while end_i + 1 < points.len()
            && points[end_i + 1].mean == mean
            && points[end_i + 1].sd == sd
        {
            end_i += 1;
        }
        let x1 = if start == 0 {
            Decimal::from(LEFT)
        } else {
            x(points[start].at)
        };
        let x2 = if end_i + 1 == points.len() {
            Decimal::from(WIDTH - RIGHT)
        } else {
            x(points[end_i + 1].at)
        };
        for (k, color, dash, label) in lines {
            let v = mean + Decimal::from(k) * sd;
            let yy = px(y(v));
            let dash = if dash.is_empty() {
                String::new()
            } else {
                format!(" stroke-dasharray=\"{dash}\"")
            };
            let _ = write!(
                svg,
                "<line class=\"limit\" data-k=\"{k}\" data-value=\"{}\" x1=\"{}\" y1=\"{yy}\" \
                 x2=\"{}\" y2=\"{yy}\" stroke=\"{color}\" stroke-width=\"1.2\"{dash}/>",
                v.normalize(),
                px(x1),
                px(x2)
            );
            if end_i + 1 == points.len() {
                let _ = write!(
                    svg,
                    "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{label} {}</text>",
                    WIDTH - RIGHT + 6,
                    px(y(v) + Decimal::from(4)),
                    esc(&v.round_dp(3).normalize().to_string())
                );
            }
        }
        start = end_i + 1;
    }
    // Y axis values at the latest target's mean and ±2 SD, on the left.
    for k in [-2i64, 0, 2] {
        let v = last.mean + Decimal::from(k) * last.sd;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#333333\">{}</text>",
            LEFT - 6,
            px(y(v) + Decimal::from(4)),
            esc(&v.round_dp(3).normalize().to_string())
        );
    }
    // Corrective actions.
    for (at, action) in &data.actions {
        if *at < t0 || *at > t1 {
            continue;
        }
        let xx = px(x(*at));
        let _ = write!(
            svg,
            "<g class=\"action\"><title>Corrective action {}: {}</title>\
             <line x1=\"{xx}\" y1=\"{TOP}\" x2=\"{xx}\" y2=\"{}\" stroke=\"#6a1b9a\" \
             stroke-dasharray=\"3 3\"/><text x=\"{xx}\" y=\"{}\" text-anchor=\"middle\" \
             fill=\"#6a1b9a\" font-weight=\"bold\">CA</text></g>",
            at.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M"),
            esc(action),
            HEIGHT - BOTTOM,
            TOP - 4
        );
    }
    // The values, joined in time order.
    let path: Vec<String> = points
        .iter()
        .map(|p| format!("{},{}", px(x(p.at)), px(y(p.value))))
        .collect();
    let _ = write!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"1\"/>",
        path.join(" ")
    );
    for p in &points {
        let (cx, cy) = (px(x(p.at)), px(y(p.value)));
        let z = format!("{:.2}", (p.value - p.mean) / p.sd);
        let tip = format!(
            "{} · {} (z {}) · {}{}",
            p.at.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M"),
            p.text,
            z,
            p.status,
            if p.rules.is_empty() {
                String::new()
            } else {
                format!(" · {}", p.rules.join(", "))
            }
        );
        let (fill, r) = match p.status {
            "rejected" => ("#c62828", "5.5"),
            "warning" => ("#ef6c00", "4.5"),
            _ => ("#1565c0", "3.5"),
        };
        let _ = write!(
            svg,
            "<g class=\"point\" data-run=\"{}\" data-value=\"{}\" data-status=\"{}\">\
             <title>{}</title><circle cx=\"{cx}\" cy=\"{cy}\" r=\"{r}\" fill=\"{fill}\"/>",
            p.run_id,
            esc(p.text),
            esc(p.status),
            esc(&tip)
        );
        if !p.rules.is_empty() {
            let _ = write!(
                svg,
                "<text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" fill=\"{fill}\" \
                 font-weight=\"bold\">{}</text>",
                px(y(p.value) - Decimal::from(9)),
                esc(&p.rules.join(" "))
            );
        }
        svg.push_str("</g>");
    }
    // Legend.
    let _ = write!(
        svg,
        "<g font-size=\"11\" fill=\"#333333\">\
         <circle cx=\"{LEFT}\" cy=\"{ly}\" r=\"3.5\" fill=\"#1565c0\"/><text x=\"{a}\" y=\"{ty}\">accepted</text>\
         <circle cx=\"{b}\" cy=\"{ly}\" r=\"4.5\" fill=\"#ef6c00\"/><text x=\"{c}\" y=\"{ty}\">warning (1-2s)</text>\
         <circle cx=\"{d}\" cy=\"{ly}\" r=\"5.5\" fill=\"#c62828\"/><text x=\"{e}\" y=\"{ty}\">rejected run</text>\
         <text x=\"{f}\" y=\"{ty}\" fill=\"#6a1b9a\" font-weight=\"bold\">CA</text><text x=\"{g}\" y=\"{ty}\">corrective action</text></g>",
        ly = HEIGHT - 14,
        ty = HEIGHT - 10,
        a = LEFT + 8,
        b = LEFT + 90,
        c = LEFT + 98,
        d = LEFT + 210,
        e = LEFT + 218,
        f = LEFT + 320,
        g = LEFT + 342,
    );
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use aliquot_app::qc::{ChartData, ChartPoint};
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    use super::render;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn data(points: Vec<ChartPoint>) -> ChartData {
        ChartData {
            instrument: "CHEM<1>".into(),
            test: "K&Na".into(),
            level: 1,
            lot: Some("L\"1'".into()),
            material: Some("Control <assayed>".into()),
            from: at("2026-11-01T00:00:00Z"),
            to: at("2026-11-03T00:00:00Z"),
            points,
            actions: vec![(at("2026-11-02T01:00:00Z"), "new <reagent> & recal".into())],
        }
    }

    fn point(run_id: i64, t: &str, value: &str, mean: &str, status: &str) -> ChartPoint {
        ChartPoint {
            run_id,
            at: at(t),
            value: value.into(),
            mean: mean.into(),
            sd: "0.1".into(),
            status: status.into(),
            rules: if status == "rejected" {
                vec!["1-3s".into()]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn text_is_escaped_and_the_document_parses() {
        let svg = render(
            &data(vec![point(
                1,
                "2026-11-01T08:00:00Z",
                "3.5",
                "3.5",
                "accepted",
            )]),
            &TimeZone::UTC,
        );
        let doc = roxmltree::Document::parse(&svg).expect("well-formed");
        let text: String = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(text.contains("K&Na on CHEM<1>"), "{text}");
        assert!(text.contains("new <reagent> & recal"), "{text}");
    }

    #[test]
    fn an_empty_period_says_so() {
        let svg = render(&data(Vec::new()), &TimeZone::UTC);
        roxmltree::Document::parse(&svg).expect("well-formed");
        assert!(svg.contains("No control values"));
    }

    #[test]
    fn limits_follow_the_target_in_force_and_points_lie_between_them() {
        let svg = render(
            &data(vec![
                point(1, "2026-11-01T08:00:00Z", "3.5", "3.5", "accepted"),
                point(2, "2026-11-02T08:00:00Z", "3.9", "3.5", "rejected"),
                point(3, "2026-11-02T20:00:00Z", "3.6", "3.6", "accepted"),
            ]),
            &TimeZone::UTC,
        );
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let limits: Vec<(String, f64)> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("limit"))
            .map(|n| {
                (
                    n.attribute("data-value").unwrap().to_owned(),
                    n.attribute("y1").unwrap().parse().unwrap(),
                )
            })
            .collect();
        // Two segments (mean 3.5, then 3.6 from the third point on), seven lines each.
        assert_eq!(limits.len(), 14, "{limits:?}");
        assert!(limits.iter().any(|(v, _)| v == "3.8"));
        assert!(limits.iter().any(|(v, _)| v == "3.9"));
        // Higher values are drawn higher (smaller y).
        let y = |v: &str| limits.iter().find(|(l, _)| l == v).unwrap().1;
        assert!(y("3.8") < y("3.5"));
        let rejected = doc
            .descendants()
            .find(|n| n.attribute("data-status") == Some("rejected"))
            .unwrap();
        let cy: f64 = rejected
            .descendants()
            .find(|n| n.has_tag_name("circle"))
            .unwrap()
            .attribute("cy")
            .unwrap()
            .parse()
            .unwrap();
        assert!(cy < y("3.8"), "3.9 lies above +3 SD (3.8)");
    }
}
