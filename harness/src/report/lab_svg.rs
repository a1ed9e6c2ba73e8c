//! A picture of a lab as SVG: external hosts on top, the fabric below them,
//! one column per node with its pods under it. Each floating IP has a colour;
//! the pod that holds it wears it, and the fabric's and nodes' routes to it
//! are drawn as arrows of that colour and listed in the boxes.
//!
//! Boxes are placed here rather than by a layout engine: the topology is
//! always these three tiers, and a fixed placement keeps every member in the
//! same spot in the pictures before and after a move, so only the floating
//! IP's badge and arrows change (dot may reorder the nodes between the two).

use std::fmt::Write;
use std::net::IpAddr;

use super::escape::escape;
use crate::check::{FloatingIpRoute, LabPicture, NodePicture, RouteHop};

const COLUMN: f64 = 250.0;
const BOX: f64 = 220.0;
const LINE: f64 = 15.0;
const GAP: f64 = 40.0;
const PALETTE: [&str; 6] = [
    "#d62728", "#9467bd", "#e377c2", "#ff7f0e", "#17becf", "#8c564b",
];

/// Render `picture` as an SVG element; `id` (unique in the page) prefixes the
/// ids of its arrowheads, one per colour.
pub fn lab_svg(picture: &LabPicture, id: &str) -> String {
    let floating_ips = picture.floating_ips();
    let colour = |ip: &IpAddr| {
        let i = floating_ips.iter().position(|f| f == ip).unwrap_or(0);
        Paint {
            colour: PALETTE[i % PALETTE.len()],
            marker: format!("{id}-arrow{}", i % PALETTE.len()),
        }
    };
    let columns = picture.nodes.len().max(picture.externals.len()).max(1);
    let width = columns as f64 * COLUMN + 20.0;
    let mut body = String::new();

    // Tier 1: external hosts, centred.
    let mut y = 10.0;
    let ext_height = LINE * 3.0;
    let ext_left = centre_offset(width, picture.externals.len());
    let ext_x: Vec<f64> = (0..picture.externals.len())
        .map(|j| ext_left + j as f64 * COLUMN)
        .collect();
    for (external, x) in picture.externals.iter().zip(&ext_x) {
        let lines = vec![addresses(&external.addresses)];
        member_box(
            &mut body,
            *x,
            y,
            ext_height,
            "external",
            &external.name,
            &lines,
        );
    }
    if !picture.externals.is_empty() {
        y += ext_height + GAP;
    }

    // Tier 2: the fabric, with its routes to the floating IPs.
    let fabric_y = y;
    let fabric_lines: Vec<String> = picture.fabric_routes.iter().map(route_text).collect();
    let fabric_height = LINE * (2.0 + fabric_lines.len().max(1) as f64);
    let fabric_x = 10.0;
    let fabric_width = width - 20.0;
    let _ = writeln!(
        body,
        r#"<rect class="fabric" x="{fabric_x}" y="{fabric_y}" width="{fabric_width}" height="{fabric_height}" rx="6"/>"#
    );
    let _ = writeln!(
        body,
        r#"<text x="{}" y="{}" class="name">fabric (ToR)</text>"#,
        fabric_x + 8.0,
        fabric_y + LINE
    );
    for (i, (route, text)) in picture.fabric_routes.iter().zip(&fabric_lines).enumerate() {
        let _ = writeln!(
            body,
            r#"<text x="{}" y="{}" fill="{}">{}</text>"#,
            fabric_x + 8.0,
            fabric_y + LINE * (2.0 + i as f64),
            colour(&route.floating_ip).colour,
            escape(text)
        );
    }
    if fabric_lines.is_empty() {
        let _ = writeln!(
            body,
            r#"<text x="{}" y="{}" class="dim">no route to a floating IP</text>"#,
            fabric_x + 8.0,
            fabric_y + LINE * 2.0
        );
    }
    for x in &ext_x {
        link(&mut body, x + BOX / 2.0, fabric_y - GAP, fabric_y);
    }
    y = fabric_y + fabric_height + GAP;

    // Tier 3: nodes and their pods.
    let node_left = centre_offset(width, picture.nodes.len());
    let mut bottom = y;
    let mut node_boxes = Vec::new();
    for (i, node) in picture.nodes.iter().enumerate() {
        let x = node_left + i as f64 * COLUMN;
        let mut lines = vec![addresses(&node.addresses)];
        lines.extend(node.routes.iter().map(route_text));
        let height = LINE * (1.5 + lines.len() as f64);
        member_box(&mut body, x, y, height, "node", &node.name, &lines);
        link(&mut body, x + BOX / 2.0, fabric_y + fabric_height, y);
        let pods_bottom = pods(&mut body, node, x, y + height, &colour);
        bottom = bottom.max(pods_bottom);
        node_boxes.push((x, y, height));
    }

    // Arrows: the fabric's routes to nodes, each node's to its pods.
    for (k, route) in picture.fabric_routes.iter().enumerate() {
        for (i, node) in picture.nodes.iter().enumerate() {
            if route.hops.contains(&RouteHop::Member(node.name.clone())) {
                let (x, y, _) = node_boxes[i];
                let at = x + BOX * 0.6 + 10.0 * k as f64;
                let from = (at, fabric_y + fabric_height);
                arrow(&mut body, from, (at, y), &colour(&route.floating_ip));
            }
        }
    }
    let height = bottom + 10.0;
    let mut svg = format!(
        r#"<svg class="lab" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    svg.push_str("<defs>\n");
    for (i, colour) in PALETTE.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<marker id="{id}-arrow{i}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="{colour}"/></marker>"#
        );
    }
    svg.push_str("</defs>\n");
    svg.push_str(&body);
    svg.push_str("</svg>");
    svg
}

/// The pods under a node, each with its addresses and floating-IP badges;
/// the node's device routes to them drawn as arrows. Returns the bottom edge.
fn pods(
    body: &mut String,
    node: &NodePicture,
    x: f64,
    mut y: f64,
    colour: &dyn Fn(&IpAddr) -> Paint,
) -> f64 {
    let node_bottom = y;
    for pod in &node.pods {
        y += GAP / 2.0;
        let badges = pod.holds.len() + pod.claims_only.len();
        let height = LINE * (2.8 + badges as f64);
        let lines = vec![addresses(&pod.addresses)];
        member_box(body, x + 20.0, y, height, "pod", &pod.name, &lines);
        let mut badge_y = y + LINE * 3.2;
        for ip in &pod.holds {
            let _ = writeln!(
                body,
                r#"<rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="{}"/><text x="{}" y="{}" class="badge">holds {}</text>"#,
                x + 28.0,
                badge_y - LINE + 3.0,
                BOX - 36.0,
                LINE,
                colour(ip).colour,
                x + 32.0,
                badge_y,
                ip
            );
            badge_y += LINE;
        }
        for ip in &pod.claims_only {
            let _ = writeln!(
                body,
                r#"<text x="{}" y="{}" fill="{}" class="claim">not held: {}</text>"#,
                x + 32.0,
                badge_y,
                colour(ip).colour,
                ip
            );
            badge_y += LINE;
        }
        for route in &node.routes {
            if route.hops.contains(&RouteHop::Member(pod.name.clone())) {
                let from = (x + 10.0, node_bottom);
                arrow(
                    body,
                    from,
                    (x + 20.0, y + height / 2.0),
                    &colour(&route.floating_ip),
                );
            }
        }
        y += height;
    }
    y
}

fn member_box(
    body: &mut String,
    x: f64,
    y: f64,
    height: f64,
    class: &str,
    name: &str,
    lines: &[String],
) {
    let width = if class == "pod" { BOX - 20.0 } else { BOX };
    let _ = writeln!(
        body,
        r#"<rect class="{class}" x="{x}" y="{y}" width="{width}" height="{height}" rx="5"/><text x="{}" y="{}" class="name">{}</text>"#,
        x + 8.0,
        y + LINE,
        escape(name)
    );
    for (i, line) in lines.iter().enumerate() {
        let _ = writeln!(
            body,
            r#"<text x="{}" y="{}">{}</text>"#,
            x + 8.0,
            y + LINE * (2.0 + i as f64),
            escape(line)
        );
    }
}

fn link(body: &mut String, x: f64, from_y: f64, to_y: f64) {
    let _ = writeln!(
        body,
        r#"<line class="link" x1="{x}" y1="{from_y}" x2="{x}" y2="{to_y}"/>"#
    );
}

/// A floating IP's colour and the id of its arrowhead.
struct Paint {
    colour: &'static str,
    marker: String,
}

fn arrow(body: &mut String, from: (f64, f64), to: (f64, f64), paint: &Paint) {
    let _ = writeln!(
        body,
        r#"<path class="route" d="M {} {} L {} {}" stroke="{}" marker-end="url(#{})"/>"#,
        from.0, from.1, to.0, to.1, paint.colour, paint.marker
    );
}

/// Where the first of `count` columns starts so the row is centred.
fn centre_offset(width: f64, count: usize) -> f64 {
    let row = count as f64 * COLUMN - (COLUMN - BOX);
    ((width - row) / 2.0).max(10.0)
}

fn addresses(addresses: &[IpAddr]) -> String {
    if addresses.is_empty() {
        return "(no address)".into();
    }
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `203.0.113.10/32 -> web-b` (` | ` between the hops of an ECMP route).
pub(super) fn route_text(route: &FloatingIpRoute) -> String {
    let hops: Vec<String> = route.hops.iter().map(ToString::to_string).collect();
    format!("{} -> {}", route.prefix, hops.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_data::sample_picture;

    #[test]
    fn routes_are_arrows_in_their_floating_ips_colour() {
        let svg = lab_svg(&sample_picture(), "t");
        // fabric -> node-a and node-a -> web-a; node-b's route via node-a is
        // text only (a node-to-node arrow would cross the fabric's).
        assert_eq!(svg.matches("<path class=\"route\"").count(), 2);
        assert_eq!(svg.matches("marker-end=\"url(#t-arrow0)\"").count(), 2);
        assert!(svg.contains("holds 203.0.113.10"));
        assert!(svg.contains("not held: 203.0.113.10"));
        assert!(svg.contains("203.0.113.10/32 -&gt; node-a"));
    }

    #[test]
    fn an_ecmp_route_names_every_hop() {
        let mut picture = sample_picture();
        picture.fabric_routes[0].hops = vec![
            RouteHop::Member("node-a".into()),
            RouteHop::Member("node-b".into()),
        ];
        let svg = lab_svg(&picture, "t");
        assert!(svg.contains("203.0.113.10/32 -&gt; node-a | node-b"));
        // One arrow from the fabric to each node, one to the pod.
        assert_eq!(svg.matches("<path class=\"route\"").count(), 3);
    }
}
