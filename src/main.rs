//! `package-cache`: see the library's documentation and README.rst.

fn main() -> std::process::ExitCode {
    package_cache::cli::main()
}
