//! Cleaning up after a killed test daemon's data plane (tests share this host's engine and
//! network namespace).

use std::path::Path;
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

/// Unmounts what a killed node's executor left mounted under its run directory (each task's
/// secrets and configs are on a tmpfs of their own there, which the node unmounts only when it
/// removes the task) and removes the directory. Run after the node is dead: a container still
/// running keeps its own bind of the files.
pub fn remove_task_file_mounts(data_dir: &Path) {
    let run_dir = shoal::agent::executor::default_run_dir(&data_dir.join("exec"));
    let prefix = format!("{}/", run_dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // Deepest first, so that nothing is left over a mount point it hides.
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").args(["-l", point]).status();
    }
    let _ = std::fs::remove_dir_all(&run_dir);
}
