//! Embedding package-cache: mount your own handler beside the mirror.
//!
//! ```text
//! cargo run --example embed -- http://127.0.0.1:8080
//! curl http://127.0.0.1:4000/hello/world        # our handler
//! curl -O http://127.0.0.1:4000/distfiles/...   # the mirror
//! ```

use package_cache::config::Config;
use package_cache::http::{Request, Response, Router, Server};
use package_cache::mirror::Mirror;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "https://distfiles.gentoo.org".into());
    let config = Config {
        sources: vec![source],
        host: "127.0.0.1".into(),
        cache: std::env::temp_dir().join("package-cache-embed"),
        ..Config::default()
    };
    package_cache::logging::init(1, false);

    // `app::open_cache` opens the store and the sources; we assemble our own router
    // around the mirror.
    let cache = std::sync::Arc::new(package_cache::app::open_cache(&config)?);
    let router =
        Router::new()
            .mount("/", Mirror::new(cache))
            .mount("/hello", |req: &mut Request| {
                Response::text(
                    200,
                    format!("hello from {}{}", req.script_name(), req.path_info()),
                )
            });
    let server = Server::bind(
        config.listen_addr()?,
        router,
        package_cache::app::server_config(&config),
    )?;
    package_cache::signals::shutdown_on_signals(server.shutdown_handle())?;
    println!(
        "listening on http://{}/ (Ctrl-C to stop)",
        server.local_addr()
    );
    server.run()?;
    Ok(())
}
