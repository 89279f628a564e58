//! Does a photo's first chunk start the way its declared type does? A
//! stored photo is served with the type it was uploaded with, so the type
//! must be true (no HTML or script passing itself off as a JPEG).

/// True when `head` (the first bytes of the file) matches `content_type`.
/// Types without a known signature (added by configuration) pass.
pub fn looks_like(content_type: &str, head: &[u8]) -> bool {
    match content_type.to_ascii_lowercase().as_str() {
        "image/jpeg" => head.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/png" => head.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/webp" => head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP",
        "image/heic" => {
            head.len() >= 12
                && &head[4..8] == b"ftyp"
                && matches!(
                    &head[8..12],
                    b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1"
                )
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like;

    #[test]
    fn each_type_is_recognised_by_its_signature_and_nothing_else() {
        let jpeg = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0";
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let webp = b"RIFF\x24\0\0\0WEBPVP8 ";
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0";
        assert!(looks_like("image/jpeg", jpeg));
        assert!(looks_like("image/png", png));
        assert!(looks_like("image/webp", webp));
        assert!(looks_like("image/heic", heic));
        assert!(looks_like("IMAGE/JPEG", jpeg));
        assert!(!looks_like("image/jpeg", png));
        assert!(!looks_like("image/png", b"<html><script>"));
        assert!(!looks_like("image/webp", b"RIFF"));
        assert!(!looks_like("image/heic", jpeg));
    }
}
