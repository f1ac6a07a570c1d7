//! Cleaning up after a killed test daemon's data plane (tests share this host's engine and
//! network namespace).

use std::process::Command;

fn engine_stdout(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// Removes what a killed node's data plane left on this host: its engine networks, its
/// bridges and VXLAN devices (named by their `shoal:<node id>:` alias) and its nftables table.
pub fn remove_data_plane_leftovers(node_id: &str) {
    let label = format!("label=io.shoal.node.id={node_id}");
    for net in engine_stdout(&["network", "ls", "-q", "--filter", &label]).split_whitespace() {
        engine_stdout(&["network", "rm", net]);
    }
    let links = Command::new("ip")
        .args(["-o", "-d", "link", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let alias = format!("alias shoal:{node_id}:");
    for line in links.lines().filter(|l| l.contains(&alias)) {
        if let Some(name) = line.split(": ").nth(1) {
            let name = name.split('@').next().unwrap_or(name);
            let _ = Command::new("ip").args(["link", "del", name]).status();
        }
    }
    let table = format!("shoal_{}", node_id.chars().take(12).collect::<String>());
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", &table])
        .output();
}
