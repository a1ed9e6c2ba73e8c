//! The plot of a floating-IP move under a stream, as SVG drawn by plotters:
//! packets per pod over time above, every packet in its pod's lane below
//! (late packets at the old pod in red, lost ones in a lane of their own at
//! the time they were sent), with the move's start and its convergence marked.

use plotters::prelude::*;

use crate::check::MigrationReport;

const WIDTH: u32 = 760;
const HEIGHT: u32 = 440;
/// Height of the upper panel (packets per bucket); the lanes take the rest.
const UPPER: u32 = 250;
const OLD_POD: RGBColor = RGBColor(31, 119, 180);
const NEW_POD: RGBColor = RGBColor(44, 160, 44);
const OTHER_POD: RGBColor = RGBColor(148, 103, 189);
const LATE: RGBColor = RGBColor(214, 39, 40);
const LOST: RGBColor = RGBColor(255, 127, 14);
const MOVE: RGBColor = RGBColor(60, 60, 60);
/// Name of the lane of packets that got no reply.
const LOST_LANE: &str = "lost (by send time)";

#[derive(Debug, thiserror::Error)]
#[error("drawing the plot of stream `{stream}`: {reason}")]
pub struct PlotError {
    pub stream: String,
    pub reason: String,
}

/// Render `migration` as a self-contained SVG document.
pub fn migration_svg(migration: &MigrationReport) -> Result<String, PlotError> {
    let mut svg = String::new();
    draw(migration, &mut svg).map_err(|reason| PlotError {
        stream: migration.stream.clone(),
        reason,
    })?;
    Ok(svg)
}

/// One packet's place in the lanes: (time in ms, lane, colour).
type Dot = (f64, usize, RGBColor);

/// A move's marks: where it starts and where it converged, each with its
/// colour and legend.
type Mark = (f64, RGBColor, String);

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

fn draw(m: &MigrationReport, svg: &mut String) -> Result<(), String> {
    let f = &m.figures;
    let moved_at = f.moved_at_ms;
    let converged_at = f.convergence_ms.map(|c| moved_at + c);
    let lanes = lanes(m);
    let dots = dots(m, &lanes);
    let last_bucket = f
        .timeline
        .values()
        .flat_map(|counts| counts.keys().max())
        .max()
        .copied()
        .unwrap_or(0);
    let x_max = dots
        .iter()
        .map(|d| d.0)
        .chain([moved_at, converged_at.unwrap_or(0.0)])
        .fold((last_bucket + f.bucket_ms) as f64, f64::max)
        * 1.02
        + 1.0;
    let mut marks: Vec<Mark> = vec![(moved_at, MOVE, format!("move starts {moved_at:.1} ms"))];
    if let Some(at) = converged_at {
        marks.push((at, NEW_POD, format!("converged +{:.1} ms", at - moved_at)));
    }
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (upper, lower) = root.split_vertically(UPPER);
    draw_counts(m, &upper, x_max, last_bucket, &marks)?;
    draw_lanes(m, &lower, x_max, (&lanes, &dots), &marks)?;
    root.present().map_err(err)
}

/// The upper panel: packets per pod per bucket, with the marks.
fn draw_counts(
    m: &MigrationReport,
    upper: &Area<'_>,
    x_max: f64,
    last_bucket: u64,
    marks: &[Mark],
) -> Result<(), String> {
    let f = &m.figures;
    let per_pod = &f.timeline;
    let y_max = per_pod
        .values()
        .flat_map(|counts| counts.values())
        .max()
        .copied()
        .unwrap_or(1)
        + 1;
    let caption = format!(
        "stream {} ({}): {} -> {}",
        m.stream, m.protocol, m.from_pod, m.to_pod
    );
    let mut chart = ChartBuilder::on(upper)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(150)
        .build_cartesian_2d(0f64..x_max, 0u64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("ms since the stream started")
        .y_desc(format!("packets per {} ms", f.bucket_ms))
        .draw()
        .map_err(err)?;
    for (pod, counts) in per_pod {
        let colour = pod_colour(m, pod);
        let points: Vec<(f64, u64)> = (0..=last_bucket / f.bucket_ms)
            .map(|i| {
                let start = i * f.bucket_ms;
                (start as f64, counts.get(&start).copied().unwrap_or(0))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(err)?
            .label(pod.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    for (at, colour, text) in marks {
        let (at, colour) = (*at, *colour);
        chart
            .draw_series([PathElement::new(
                [(at, 0), (at, y_max)],
                colour.stroke_width(1),
            )])
            .map_err(err)?
            .label(text.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// The lower panel: every packet in its lane, with the marks.
fn draw_lanes(
    m: &MigrationReport,
    lower: &Area<'_>,
    x_max: f64,
    (lanes, dots): (&[String], &[Dot]),
    marks: &[Mark],
) -> Result<(), String> {
    let f = &m.figures;
    let summary = format!(
        "sent {}, lost {}, {} late at {}, convergence {}",
        f.sent,
        f.lost,
        f.late_at_old_pod,
        m.from_pod,
        f.convergence_ms
            .map_or("none (nothing reached the new pod)".to_string(), |c| {
                format!("{c:.1} ms")
            })
    );
    let names = lanes.to_vec();
    let mut raster = ChartBuilder::on(lower)
        .caption(summary, ("sans-serif", 13))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(150)
        .build_cartesian_2d(0f64..x_max, -0.5f64..(lanes.len() as f64 - 0.5))
        .map_err(err)?;
    raster
        .configure_mesh()
        .y_labels(lanes.len())
        .y_label_formatter(&|y| {
            let lane = y.round();
            if (y - lane).abs() < 0.01 && lane >= 0.0 {
                names.get(lane as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("ms since the stream started (delivery time; lost: send time)")
        .disable_y_mesh()
        .draw()
        .map_err(err)?;
    raster
        .draw_series(
            dots.iter()
                .map(|(x, lane, colour)| Circle::new((*x, *lane as f64), 2, colour.filled())),
        )
        .map_err(err)?;
    let top = lanes.len() as f64 - 0.5;
    for (at, colour, _) in marks {
        raster
            .draw_series([PathElement::new(
                [(*at, -0.5), (*at, top)],
                colour.stroke_width(1),
            )])
            .map_err(err)?;
    }
    Ok(())
}

/// The lanes: the old pod, the new pod, any other pod that got packets, then
/// the lost packets.
fn lanes(m: &MigrationReport) -> Vec<String> {
    let mut lanes = vec![m.from_pod.clone(), m.to_pod.clone()];
    let others = m
        .packets
        .iter()
        .filter_map(|p| p.delivered.as_ref().map(|(pod, _)| pod))
        .chain(m.figures.timeline.keys());
    for pod in others {
        if !lanes.contains(pod) {
            lanes.push(pod.clone());
        }
    }
    lanes.push(LOST_LANE.to_string());
    lanes
}

fn dots(m: &MigrationReport, lanes: &[String]) -> Vec<Dot> {
    let moved_at_us = (m.figures.moved_at_ms * 1000.0).round() as u64;
    let lost_lane = lanes.len() - 1;
    let mut dots = Vec::new();
    for packet in &m.packets {
        if let Some((pod, at_us)) = &packet.delivered {
            let lane = lanes.iter().position(|l| l == pod).unwrap_or(lost_lane);
            // Late: as MigrationFigures::compute counts them.
            let colour = if *pod == m.from_pod && *at_us > moved_at_us {
                LATE
            } else {
                pod_colour(m, pod)
            };
            dots.push((*at_us as f64 / 1000.0, lane, colour));
        }
        if !packet.answered {
            if let Some(sent_us) = packet.sent_at_us {
                dots.push((sent_us as f64 / 1000.0, lost_lane, LOST));
            }
        }
    }
    dots
}

fn pod_colour(m: &MigrationReport, pod: &str) -> RGBColor {
    if pod == m.from_pod {
        OLD_POD
    } else if pod == m.to_pod {
        NEW_POD
    } else {
        OTHER_POD
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_data::sample_migration as sample;

    #[test]
    fn every_packet_is_drawn_with_late_and_lost_marked() {
        let m = sample();
        let lanes = lanes(&m);
        assert_eq!(lanes, ["web-a", "web-b", LOST_LANE]);
        let dots = dots(&m, &lanes);
        let count = |colour: RGBColor| dots.iter().filter(|d| d.2 == colour).count();
        assert_eq!(
            (count(OLD_POD), count(LATE), count(NEW_POD), count(LOST)),
            (2, 1, 3, 2)
        );
        // Lost packets sit at their send times in the last lane.
        let lost: Vec<(f64, usize)> = dots
            .iter()
            .filter(|d| d.2 == LOST)
            .map(|d| (d.0, d.1))
            .collect();
        assert_eq!(lost, [(3.9, 2), (4.9, 2)]);
    }

    #[test]
    fn the_svg_marks_the_move_and_its_convergence() {
        let svg = migration_svg(&sample()).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("move starts 3.0 ms"));
        assert!(svg.contains("converged +3.2 ms"));
        assert!(svg.contains("sent 8, lost 2, 1 late at web-a, convergence 3.2 ms"));
        // 8 delivered or lost dots: 6 deliveries and 2 losses.
        assert_eq!(svg.matches("<circle").count(), 8);
    }

    #[test]
    fn a_move_that_never_converged_says_so() {
        let mut m = sample();
        m.figures.convergence_ms = None;
        let svg = migration_svg(&m).unwrap();
        assert!(!svg.contains("converged +"));
        assert!(svg.contains("convergence none (nothing reached the new pod)"));
    }
}
