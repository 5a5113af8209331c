//! controld: loads the ScreenOS-style configuration, programs fastpathd
//! (routes, tunnel interfaces, proxy-ID tables, manual-key SAs), keeps it
//! programmed across restarts of either daemon, and serves the operator
//! socket used by `esprit`.
//!
//! `controld --check FILE` validates a configuration and exits, like
//! `nginx -t`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use esprit_config::model::InterfaceName;
use esprit_config::Config;
use esprit_controld::core::ids::assign_hex_ids;
use esprit_controld::core::translate::translate;
use esprit_controld::ike::ike_gateways;
use esprit_controld::io::daemon::{run, Options};

/// esprit's control plane daemon.
#[derive(Debug, Parser)]
#[command(name = "controld", version)]
struct Args {
    /// Validate FILE (the whole configuration, and that fastpathd could be
    /// programmed from it), print the warnings, and exit.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["config", "fastpath", "socket", "state_dir"])]
    check: Option<PathBuf>,
    /// The configuration file (ScreenOS `set` lines).
    #[arg(long, value_name = "FILE", required_unless_present = "check")]
    config: Option<PathBuf>,
    /// fastpathd's control socket.
    #[arg(long, value_name = "SOCKET", required_unless_present = "check")]
    fastpath: Option<PathBuf>,
    /// The operator socket to create (mode 0600, root only, unless
    /// --socket-group), used by `esprit`.
    #[arg(long, value_name = "CLI_SOCKET", required_unless_present = "check")]
    socket: Option<PathBuf>,
    /// Where controld keeps what must survive its restart.
    #[arg(long, value_name = "DIR", required_unless_present = "check")]
    state_dir: Option<PathBuf>,
    /// Serve fastpathd's counters in the Prometheus text format at
    /// http://ADDR:PORT/metrics (off unless given; no authentication: bind
    /// it to loopback or a management address).
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "check")]
    metrics: Option<std::net::SocketAddr>,
    /// Binds a ScreenOS port to a Linux device (`ethernet0/2=wan0`);
    /// overrides `set interface NAME port NETDEV`. Repeatable.
    #[arg(long = "port-map", value_name = "PORT=NETDEV", value_parser = parse_port_map)]
    port_map: Vec<(String, String)>,
    /// Do not write events to the system log (`/dev/log`); `get event`
    /// still has them.
    #[arg(long)]
    no_syslog: bool,
    /// Members of this group may use the operator socket too (it is then
    /// mode 0660, owned by this group); without it, root only.
    #[arg(long, value_name = "NAME", conflicts_with = "check")]
    socket_group: Option<String>,
}

/// The gid of `--socket-group NAME`.
fn socket_group(name: &str) -> Result<u32, String> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("--socket-group {name:?}: no such group")),
        Err(e) => Err(format!("--socket-group {name:?}: {e}")),
    }
}

fn parse_port_map(text: &str) -> Result<(String, String), String> {
    let (port, dev) =
        text.split_once('=').ok_or_else(|| format!("{text:?}: expected PORT=NETDEV, as ethernet0/2=wan0"))?;
    let name = InterfaceName::new(port).map_err(|e| format!("{text:?}: {e}"))?;
    if name.is_tunnel() {
        return Err(format!("{text:?}: {name} is a tunnel interface; only ports have a Linux device"));
    }
    if dev.is_empty() || dev.len() > 15 || dev.contains(['/', ':', ' ']) {
        return Err(format!("{text:?}: bad device name {dev:?}: 1 to 15 characters without / : or spaces"));
    }
    Ok((name.to_string(), dev.to_owned()))
}

fn check(path: &PathBuf, port_map: &BTreeMap<String, String>) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (config, warnings) = Config::load(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for w in &warnings {
        eprintln!("{}: {w}", path.display());
    }
    let ids = assign_hex_ids(&config, &BTreeMap::new());
    let t = translate(&config, port_map, &ids).map_err(|e| format!("{}: {e}", path.display()))?;
    for w in &t.warnings {
        eprintln!("{}: warning: {w}", path.display());
    }
    // What IKE makes of it: certificate files read and checked, versions.
    let (gateways, ike_warnings) = ike_gateways(&config, &ids);
    for w in &ike_warnings {
        eprintln!("{}: warning: {w}", path.display());
    }
    let v2 = gateways.iter().filter(|g| g.ikev2).count();
    let d = &t.desired;
    println!(
        "{}: configuration OK: {} VPN(s), {} tunnel interface(s), {} route(s), {} manual-key SA(s), {} AutoKey proxy-ID(s), {} IKE gateway(s) run ({v2} IKEv2)",
        path.display(),
        config.vpns().count(),
        d.tunnels.len(),
        d.routes.len(),
        d.sas.len(),
        d.pending.len(),
        gateways.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let port_map: BTreeMap<String, String> = args.port_map.into_iter().collect();
    let group = match args.socket_group.as_deref().map(socket_group).transpose() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("controld: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match (args.check, args.config, args.fastpath, args.socket, args.state_dir) {
        (Some(file), ..) => check(&file, &port_map),
        (None, Some(config), Some(fastpath), Some(socket), Some(state_dir)) => run(Options {
            socket_group: group,
            config,
            fastpath,
            socket,
            state_dir,
            port_map,
            metrics: args.metrics,
            syslog: !args.no_syslog,
        }),
        _ => Err("give --check FILE, or --config, --fastpath, --socket and --state-dir".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("controld: {e}");
            ExitCode::FAILURE
        }
    }
}
