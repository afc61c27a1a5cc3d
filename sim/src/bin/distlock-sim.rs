//! `distlock-sim`: the simulation's command line (see `./scripts/sim`).

#[cfg(madsim)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(distlock_sim::cli::main(&args));
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("distlock-sim only works when built with --cfg madsim: run ./scripts/sim");
    std::process::exit(2);
}
