//! Guessing a `Content-Type` from a file name.
//!
//! The table covers what package mirrors serve: archives, compressed files, signatures,
//! checksums and text indexes. Anything else is `application/octet-stream`, which is
//! what a package manager treats as opaque bytes anyway.

/// The media type for a file called `name` (only the last path segment matters).
pub fn guess(name: &str) -> &'static str {
    let name = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    // Whole names first: index files without an extension.
    match name.as_str() {
        "packages" | "manifest" | "layout.conf" | "timestamp" | "timestamp.chk" | "timestamp.x" => {
            return "text/plain; charset=utf-8";
        }
        _ => {}
    }
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) => ext,
        None => return "application/octet-stream",
    };
    match ext {
        "gz" | "tgz" => "application/gzip",
        "xz" | "txz" => "application/x-xz",
        "bz2" | "tbz2" | "tbz" => "application/x-bzip2",
        "zst" | "tzst" => "application/zstd",
        "lz" => "application/x-lzip",
        "lzma" => "application/x-lzma",
        "lz4" => "application/x-lz4",
        "tar" => "application/x-tar",
        "zip" | "jar" => "application/zip",
        "7z" => "application/x-7z-compressed",
        "rpm" => "application/x-rpm",
        "deb" => "application/vnd.debian.binary-package",
        "iso" => "application/x-iso9660-image",
        "asc" | "sig" | "gpgsig" => "application/pgp-signature",
        "gpg" => "application/pgp-keys",
        "txt" | "conf" | "md5sum" | "sha256sum" | "sha512sum" | "digests" | "contents"
        | "ebuild" | "eclass" | "patch" | "diff" | "log" => "text/plain; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::guess;

    #[test]
    fn package_files() {
        assert_eq!(
            guess("/distfiles/0a/MooseX-OneArgNew-0.007.tar.gz"),
            "application/gzip"
        );
        assert_eq!(guess("gentoo-20240101.tar.xz"), "application/x-xz");
        assert_eq!(
            guess("gentoo-20240101.tar.xz.gpgsig"),
            "application/pgp-signature"
        );
        assert_eq!(
            guess("gentoo-latest.tar.xz.md5sum"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(guess("foo-1.gpkg.tar"), "application/x-tar");
        assert_eq!(guess("binpkgs/Packages"), "text/plain; charset=utf-8");
        assert_eq!(guess("README"), "application/octet-stream");
        assert_eq!(guess("weird.unknownext"), "application/octet-stream");
        assert_eq!(guess("UPPER.TAR.GZ"), "application/gzip");
    }
}
