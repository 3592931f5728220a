//! `pyrite-loadgen`: serves synthetic scrape targets on loopback.
//!
//! Prints one `host:port` line per target on stdout, then `ready`, and serves until killed.

use std::io::Write;

use clap::Parser;

#[derive(Parser)]
#[command(name = "pyrite-loadgen", about = "Synthetic scrape targets for Pyrite's tests and benchmarks")]
struct Args {
    /// Number of targets (one listener each).
    #[arg(long, default_value_t = 10)]
    targets: usize,
    /// Series per target.
    #[arg(long, default_value_t = 200)]
    series: usize,
    /// Address to listen on; each target gets an ephemeral port.
    #[arg(long, default_value = "127.0.0.1")]
    ip: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build()?;
    rt.block_on(async {
        let listeners = pyrite_loadgen::server::bind(&args.ip, args.targets)?;
        let mut out = std::io::stdout().lock();
        for (_, addr) in &listeners {
            writeln!(out, "{addr}")?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
        drop(out);
        pyrite_loadgen::server::serve(listeners, args.series).await;
        Ok(())
    })
}
