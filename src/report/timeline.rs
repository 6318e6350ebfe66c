//! The report's time line (issue 24): every test run of a bisection as a
//! bar from its start to its end, one lane per run going at once, so what
//! ran in parallel shows as stacked bars.
//!
//! Invariant: renders the record's `run_times` only (a v1 record has none:
//! no section); reads nothing else.

use std::fmt::Write;

use crate::bisect::record::BisectionRecord;
use crate::key::short;

/// Pixels of the drawing's width, and of one lane's height.
const WIDTH: f64 = 900.0;
const LANE: f64 = 14.0;

/// A run to draw: its step (1-based), commit, start and end.
struct Bar<'a> {
    step: usize,
    commit: &'a str,
    start: f64,
    end: f64,
}

/// Lanes for bars sorted by start: each bar in the first lane free at its
/// start (the fewest lanes: as many as runs ever went at once).
fn lanes(bars: &[Bar]) -> Vec<usize> {
    let mut lane_ends: Vec<f64> = Vec::new();
    bars.iter()
        .map(|b| match lane_ends.iter().position(|&end| end <= b.start + 1e-3) {
            Some(l) => {
                lane_ends[l] = b.end;
                l
            }
            None => {
                lane_ends.push(b.end);
                lane_ends.len() - 1
            }
        })
        .collect()
}

fn bars(r: &BisectionRecord) -> Vec<Bar<'_>> {
    let mut bars: Vec<Bar> = r
        .steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.run_times.iter().map(move |t| Bar {
                step: i + 1,
                commit: s.commit.as_str(),
                start: t.start,
                end: t.end.max(t.start),
            })
        })
        .collect();
    bars.sort_by(|a, b| a.start.total_cmp(&b.start));
    bars
}

/// The section, or nothing when the record has no run times.
pub fn section(h: &mut String, r: &BisectionRecord) {
    let bars = bars(r);
    let (Some(first), Some(last)) = (
        bars.iter().map(|b| b.start).min_by(f64::total_cmp),
        bars.iter().map(|b| b.end).max_by(f64::total_cmp),
    ) else {
        return;
    };
    let lane_of = lanes(&bars);
    let lanes = lane_of.iter().max().map_or(1, |l| l + 1);
    let span = (last - first).max(1e-3);
    let x = |t: f64| 10.0 + (t - first) / span * (WIDTH - 20.0);
    let height = lanes as f64 * LANE + 30.0;
    let _ = write!(
        h,
        "<section id=\"timeline\"><h2>Time line</h2><p>{} test runs over {span:.1}s, at most {lanes} at once \
         (<code>--jobs</code>); one bar per run from its start to its end, coloured by step.</p>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" \
         role=\"img\" aria-label=\"test runs over time\">",
        bars.len()
    );
    for (b, lane) in bars.iter().zip(&lane_of) {
        let (x0, x1) = (x(b.start), x(b.end));
        let _ = write!(
            h,
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"hsl({},55%,55%)\">\
             <title>step {} ({}): {:.2}s to {:.2}s</title></rect>",
            10.0 + *lane as f64 * LANE,
            (x1 - x0).max(1.0),
            LANE - 3.0,
            (b.step * 47) % 360,
            b.step,
            short(b.commit),
            b.start - first,
            b.end - first
        );
    }
    let _ = writeln!(
        h,
        "<text x=\"10\" y=\"{:.1}\">0s</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{span:.1}s</text></svg></section>",
        height - 6.0,
        WIDTH - 10.0,
        height - 6.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(start: f64, end: f64) -> Bar<'static> {
        Bar {
            step: 1,
            commit: "c",
            start,
            end,
        }
    }

    #[test]
    fn overlapping_runs_take_separate_lanes_and_later_ones_reuse_them() {
        let bars = [
            bar(0.0, 2.0),
            bar(0.5, 2.5),
            bar(1.0, 3.0),
            bar(2.0, 4.0),
            bar(3.1, 5.0),
        ];
        assert_eq!(lanes(&bars), vec![0, 1, 2, 0, 1]);
    }

    #[test]
    fn one_at_a_time_is_one_lane() {
        let bars = [bar(0.0, 1.0), bar(1.0, 2.0), bar(2.5, 3.0)];
        assert_eq!(lanes(&bars), vec![0, 0, 0]);
    }
}
