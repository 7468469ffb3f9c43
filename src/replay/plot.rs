//! `--plot`: requests, refusals and active verdicts over time, per probe,
//! as SVG or HTML (plotters).
//!
//! One panel per probe, stacked: requests and would-be refusals per bucket
//! on the left axis, verdicts active in the bucket on the right one (they
//! are a handful where requests are thousands). The picture is rendered
//! to a string first, so a failure leaves no half-written file, and the
//! same data always gives the same bytes.

use std::path::Path;

use plotters::prelude::*;

use super::time::format_rfc3339;

/// What the plot shows: per probe, counts in equal time buckets.
#[derive(Debug, Clone, Default)]
pub struct PlotData {
    /// The first bucket's start, in Unix seconds.
    pub start_secs: i64,
    /// Each bucket's length, in seconds (at least 1).
    pub bucket_secs: i64,
    /// One series set per probe, in config order.
    pub probes: Vec<ProbeSeries>,
}

/// One probe's series; the three vectors have the same length.
#[derive(Debug, Clone, Default)]
pub struct ProbeSeries {
    /// The probe's name.
    pub name: String,
    /// Requests to the probe per bucket.
    pub requests: Vec<u64>,
    /// Requests enforce mode would have refused, per bucket.
    pub refusals: Vec<u64>,
    /// Verdicts caught on the probe that were active at some time in the
    /// bucket.
    pub verdicts: Vec<u64>,
}

const WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 280;
const REQUESTS: RGBColor = RGBColor(31, 119, 180);
const REFUSALS: RGBColor = RGBColor(214, 39, 40);
const VERDICTS: RGBColor = RGBColor(255, 127, 14);

/// Writes `data` to `path`: SVG (`.svg`), or an HTML page holding the SVG
/// (`.html` / `.htm`).
///
/// # Errors
/// The name is neither (see [`plot_is_html`]), the file cannot be written,
/// or plotters failed to draw.
pub fn write_plot(path: &Path, data: &PlotData) -> Result<(), String> {
    let html = plot_is_html(path)?;
    let svg = render_svg(data).map_err(|e| format!("--plot {}: {e}", path.display()))?;
    let out = if html { html_page(&svg) } else { svg };
    std::fs::write(path, out).map_err(|e| format!("--plot {}: {e}", path.display()))
}

/// Whether `path` names an HTML page (`.html`, `.htm`) rather than an SVG
/// (`.svg`).
///
/// # Errors
/// Any other name: the picture is written as SVG or HTML only.
pub fn plot_is_html(path: &Path) -> Result<bool, String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("svg") {
        Ok(false)
    } else if ext.eq_ignore_ascii_case("html") || ext.eq_ignore_ascii_case("htm") {
        Ok(true)
    } else {
        Err(format!(
            "--plot {}: the picture is written as SVG (.svg) or as an HTML page (.html)",
            path.display()
        ))
    }
}

/// The picture as an SVG document.
///
/// # Errors
/// plotters failed to draw.
pub fn render_svg(data: &PlotData) -> Result<String, String> {
    let panels = data.probes.len().max(1);
    let height = PANEL_HEIGHT * u32::try_from(panels).unwrap_or(u32::MAX / PANEL_HEIGHT);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        if data.probes.is_empty() {
            root.draw(&Text::new(
                "no requests to any probe",
                (20, 40),
                ("sans-serif", 18).into_font(),
            ))
            .map_err(|e| e.to_string())?;
        }
        let areas = root.split_evenly((panels, 1));
        for (area, probe) in areas.iter().zip(&data.probes) {
            panel(area, data, probe).map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn panel(
    area: &Area<'_>,
    data: &PlotData,
    probe: &ProbeSeries,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let bucket = data.bucket_secs.max(1);
    let len = probe.requests.len().max(1) as i64;
    let x_end = data.start_secs + len * bucket;
    let y_max = probe
        .requests
        .iter()
        .chain(&probe.refusals)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let v_max = probe.verdicts.iter().copied().max().unwrap_or(0).max(1);
    let long = x_end - data.start_secs > 86_400;
    let caption = format!(
        "{}: requests, would-be refusals per {} and active verdicts",
        probe.name,
        bucket_label(bucket)
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .right_y_label_area_size(44)
        .build_cartesian_2d(data.start_secs..x_end, 0u64..y_max + y_max / 10 + 1)?
        .set_secondary_coord(data.start_secs..x_end, 0u64..v_max + 1);
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&|s| clock(*s, long))
        .y_desc("requests per bucket")
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_labels(4)
        .y_desc("verdicts")
        .draw()?;
    let at = |i: usize| data.start_secs + i as i64 * bucket;
    let line = |values: &[u64], color: RGBColor| {
        LineSeries::new(
            values.iter().enumerate().map(|(i, &v)| (at(i), v)),
            color.stroke_width(2),
        )
    };
    let key = |color: RGBColor| {
        move |(x, y): (i32, i32)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
    };
    for (values, color, label) in [
        (&probe.requests, REQUESTS, "requests"),
        (&probe.refusals, REFUSALS, "would be refused"),
    ] {
        chart
            .draw_series(line(values, color))?
            .label(label)
            .legend(key(color));
    }
    chart
        .draw_secondary_series(line(&probe.verdicts, VERDICTS))?
        .label("active verdicts (right axis)")
        .legend(key(VERDICTS));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

/// `HH:MM` (UTC), with the date in front when the log spans days.
fn clock(secs: i64, long: bool) -> String {
    let t = format_rfc3339(secs.saturating_mul(1_000_000_000));
    if long {
        format!("{} {}", &t[5..10], &t[11..16])
    } else {
        t[11..16].to_string()
    }
}

fn bucket_label(secs: i64) -> String {
    match secs {
        1 => "second".into(),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn html_page(svg: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>enumguard replay</title>\n</head>\n<body>\n\
         <h1>enumguard replay: requests, refusals and verdicts per probe</h1>\n\
         {svg}\n</body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> PlotData {
        PlotData {
            start_secs: 1_764_720_000,
            bucket_secs: 60,
            probes: vec![
                ProbeSeries {
                    name: "addressbook".into(),
                    requests: vec![10, 400, 380, 20],
                    refusals: vec![0, 300, 370, 0],
                    verdicts: vec![0, 2, 3, 1],
                },
                ProbeSeries {
                    name: "email_exists".into(),
                    requests: vec![3, 4, 5, 6],
                    refusals: vec![0, 0, 0, 0],
                    verdicts: vec![0, 0, 0, 0],
                },
            ],
        }
    }

    #[test]
    fn svg_names_every_probe_and_series() {
        let svg = render_svg(&data()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains("addressbook"));
        assert!(svg.contains("email_exists"));
        assert!(svg.contains("would be refused"));
        assert!(svg.contains("active verdicts"));
        // Time labels are the log's clock (UTC), not bucket numbers.
        assert!(svg.contains("00:00"), "no HH:MM label");
    }

    #[test]
    fn same_data_same_bytes() {
        assert_eq!(render_svg(&data()).unwrap(), render_svg(&data()).unwrap());
    }

    #[test]
    fn html_wraps_the_svg_and_svg_is_bare() {
        let dir = std::env::temp_dir().join(format!("enumguard-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let h = dir.join("p.html");
        let s = dir.join("p.svg");
        write_plot(&h, &data()).unwrap();
        write_plot(&s, &data()).unwrap();
        let html = std::fs::read_to_string(&h).unwrap();
        let svg = std::fs::read_to_string(&s).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains(&svg));
        assert!(svg.starts_with("<svg"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_and_degenerate_data_draw() {
        let svg = render_svg(&PlotData::default()).unwrap();
        assert!(svg.contains("no requests"));
        let one = PlotData {
            start_secs: 0,
            bucket_secs: 0,
            probes: vec![ProbeSeries {
                name: "p".into(),
                requests: vec![],
                refusals: vec![],
                verdicts: vec![],
            }],
        };
        assert!(render_svg(&one).unwrap().contains("<svg"));
    }

    #[test]
    fn unwritable_path_is_an_error_naming_it() {
        let e = write_plot(Path::new("/nonexistent-dir/x.svg"), &data()).unwrap_err();
        assert!(e.contains("/nonexistent-dir/x.svg"), "{e}");
    }

    #[test]
    fn clock_labels() {
        assert_eq!(clock(1_764_720_000 + 3_660, false), "01:01");
        assert_eq!(clock(1_764_720_000, true), "12-03 00:00");
        assert_eq!(bucket_label(1), "second");
        assert_eq!(bucket_label(120), "2 min");
        assert_eq!(bucket_label(7200), "2 h");
        assert_eq!(bucket_label(90), "90 s");
    }
}
