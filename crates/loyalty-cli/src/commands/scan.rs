//! `loyalty scan`: the I/O floor benchmarks compare with, as one JSON line.

use std::io::Write;

use crate::cli::ScanArgs;

pub fn run(args: ScanArgs) -> anyhow::Result<()> {
    let r = loyalty_pipeline::scan::scan(&args.data, args.all_tables)?;
    writeln!(
        std::io::stdout(),
        "{{\"tables\": {}, \"rows\": {}, \"columns\": {}, \"wall_seconds\": {:.3}}}",
        r.tables,
        r.rows,
        r.columns,
        r.wall_seconds
    )?;
    Ok(())
}
