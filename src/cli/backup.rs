//! `shoal backup --out FILE` and `shoal restore FILE --data-dir DIR`: a manager's store saved
//! to a file and made into a new manager's data dir (etcd's `snapshot save` and `restore`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use http_body_util::BodyExt;

use super::{Connection, Output};

/// `shoal backup --out FILE`.
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Where to write the backup (mode 0600: it holds every secret and the root CA key)
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// How to print what was written
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    conn: Connection,
}

/// `shoal restore FILE --data-dir DIR`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The backup file (`shoal backup --out`)
    file: PathBuf,
    /// The data dir to create (what `shoal daemon --data-dir` is then given); must hold no swarm
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The swarm listener of the restored manager
    #[arg(long, default_value = "0.0.0.0:2377", value_name = "HOST:PORT")]
    listen_addr: String,
    /// The address other nodes reach it at [default: from --listen-addr, else this host's
    /// address on its default route]
    #[arg(long, value_name = "HOST:PORT")]
    advertise_addr: Option<String>,
    /// How to print what was restored
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: Output,
}

/// Runs `shoal backup`.
pub async fn backup(args: BackupArgs) -> anyhow::Result<i32> {
    let client = args.conn.client()?;
    let response = client.get("/shoal/v1/backup").await?;
    let partial = args.out.with_extension("partial");
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?
    };
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("receiving the backup")?;
        if let Some(data) = frame.data_ref() {
            file.write_all(data)
                .with_context(|| format!("writing {}", partial.display()))?;
        }
    }
    file.sync_all()?;
    drop(file);
    let (header, _) = shoal_store::backup::verify(&partial)
        .context("the backup received does not check out; nothing was written")?;
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("renaming to {}", args.out.display()))?;
    if args.output == Output::Table {
        println!(
            "backup of revision {} ({} bytes of state) written to {}; it holds every secret and the root CA key: keep it as safe as the swarm's unlock key",
            header.revision,
            header.snapshot_len,
            args.out.display()
        );
    } else {
        print!(
            "{}",
            args.output.render(&serde_json::json!({
                "File": args.out,
                "NodeID": header.node_id,
                "Revision": header.revision,
                "LastLogIndex": header.last_log_index,
                "CreatedAt": header.created_at,
                "StateBytes": header.snapshot_len,
            }))
        );
    }
    Ok(0)
}

/// Runs `shoal restore`.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<i32> {
    let restored = crate::node::restore::restore(
        &args.file,
        &args.data_dir,
        &args.listen_addr,
        args.advertise_addr.as_deref(),
    )
    .await?;
    if args.output != Output::Table {
        print!(
            "{}",
            args.output.render(&serde_json::json!({
                "Revision": restored.revision,
                "NodeID": restored.node_id,
                "ClusterID": restored.cluster_id,
                "DataDir": restored.data_dir,
                "Locked": restored.locked,
            }))
        );
        return Ok(0);
    }
    println!(
        "restored revision {} of swarm {} into {} as manager {}; start it with `shoal daemon --data-dir {}`{}",
        restored.revision,
        restored.cluster_id,
        restored.data_dir.display(),
        restored.node_id,
        restored.data_dir.display(),
        if restored.locked {
            ", then `docker swarm unlock` with the swarm's unlock key"
        } else {
            ""
        }
    );
    Ok(0)
}
