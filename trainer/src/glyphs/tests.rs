use std::collections::HashSet;

use ab_glyph::FontRef;
use image::GrayImage;

use super::*;

fn fonts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fonts")
}

fn pair() -> PathBuf {
    fonts_dir().join("noto-pair.ttc")
}

fn droid() -> PathBuf {
    fonts_dir().join("droid-subset.ttf")
}

fn spec(chars: &str, out: &Path, min_fonts: usize) -> GlyphSpec {
    GlyphSpec {
        chars: chars.parse().unwrap(),
        fonts: vec![pair(), droid()],
        out: out.to_path_buf(),
        size: 48,
        min_fonts,
    }
}

/// Files under `dir` (relative paths) with their bytes, sorted.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for class in fs::read_dir(dir).unwrap() {
        let class = class.unwrap().path();
        for f in fs::read_dir(&class).unwrap() {
            let f = f.unwrap().path();
            let rel = f.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            out.push((rel, fs::read(&f).unwrap()));
        }
    }
    out.sort();
    out
}

/// Bounding box (x0, y0, x1, y1), inclusive, of pixels darker than 128.
fn ink_box(img: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let mut b: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in img.enumerate_pixels() {
        if p.0[0] < 128 {
            b = Some(match b {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    b
}

#[test]
fn gb2312_levels_have_their_sizes_and_ends() {
    let l1 = CharSet::Gb2312Level1.chars();
    let l2 = CharSet::Gb2312Level2.chars();
    assert_eq!(l1.len(), 3755);
    assert_eq!(l2.len(), 3008);
    assert_eq!((l1[0], l1[l1.len() - 1]), ('啊', '座'));
    assert_eq!((l2[0], l2[l2.len() - 1]), ('亍', '齄'));
    assert!(
        l1.iter()
            .chain(&l2)
            .all(|&c| ('\u{4E00}'..='\u{9FFF}').contains(&c))
    );
    let s1: HashSet<char> = l1.iter().copied().collect();
    assert!(
        l2.iter().all(|c| !s1.contains(c)),
        "the levels are disjoint"
    );
    assert!(s1.contains(&'人') && s1.contains(&'水'));
}

#[test]
fn parses_character_sets() {
    assert_eq!(
        "gb2312-1".parse::<CharSet>().unwrap(),
        CharSet::Gb2312Level1
    );
    assert_eq!(
        " GB2312-2 ".parse::<CharSet>().unwrap(),
        CharSet::Gb2312Level2
    );
    let r: CharSet = "U+4E00..U+4E02, u+4e05".parse().unwrap();
    assert_eq!(r.chars(), vec!['一', '丁', '丂', '丅']);
    assert_eq!(r.to_string(), "U+4E00..U+4E02,U+4E05");
    assert_eq!(
        "U+4E00-U+4E01".parse::<CharSet>().unwrap().chars(),
        vec!['一', '丁']
    );
    // Surrogates inside a range are skipped, not an error.
    assert_eq!(
        "U+D7FF..U+E000".parse::<CharSet>().unwrap().chars().len(),
        2
    );
    let l: CharSet = "人大 山,水人".parse().unwrap();
    assert_eq!(
        l.chars(),
        vec!['人', '大', '山', '水'],
        "separators dropped, duplicates once"
    );

    for bad in ["", "  ", "U+ZZZZ", "U+4E05..U+4E00", "U+110000", ",,,"] {
        let e = bad.parse::<CharSet>().unwrap_err();
        assert!(matches!(e, GlyphError::CharSet { .. }), "{bad:?}: {e}");
    }
}

#[test]
fn reads_character_files() {
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("chars.txt");
    fs::write(&lines, "# comment\n人\n大\n\n山\n").unwrap();
    let plain = dir.path().join("plain.txt");
    fs::write(&plain, "\u{feff}水火 木\n").unwrap();
    let at = format!("@{}", lines.display());
    assert_eq!(
        at.parse::<CharSet>().unwrap().chars(),
        vec!['人', '大', '山']
    );
    let bare = plain.display().to_string();
    assert_eq!(
        bare.parse::<CharSet>().unwrap().chars(),
        vec!['水', '火', '木']
    );
    let empty = dir.path().join("empty.txt");
    fs::write(&empty, "\n# nothing\n").unwrap();
    assert!(CharSet::from_file(&empty).is_err());
    let e = "@/no/such/file.txt".parse::<CharSet>().unwrap_err();
    assert!(e.to_string().contains("/no/such/file.txt"), "{e}");
}

#[test]
fn counts_faces_of_collections() {
    let mut header = b"ttcf\x00\x01\x00\x00\x00\x00\x00\x03".to_vec();
    assert_eq!(face_count(&header), 3);
    header[0] = b'x';
    assert_eq!(face_count(&header), 1);
    assert_eq!(face_count(&fs::read(pair()).unwrap()), 2);
    assert_eq!(face_count(&fs::read(droid()).unwrap()), 1);
}

#[test]
fn renders_a_glyph_fitted_and_centred() {
    let data = fs::read(droid()).unwrap();
    let font = FontRef::try_from_slice(&data).unwrap();
    for size in [32u32, 64, 100] {
        let img = render_glyph(&font, '大', size).expect("大 is in the font");
        assert_eq!(img.dimensions(), (size, size));
        let (x0, y0, x1, y1) = ink_box(&img).expect("ink");
        let (w, h) = ((x1 - x0 + 1) as f32, (y1 - y0 + 1) as f32);
        let want = FILL * size as f32;
        assert!(
            (w.max(h) - want).abs() <= 2.0,
            "size {size}: {w}×{h}, want {want}"
        );
        let (cx, cy) = ((x0 + x1 + 1) as f32 / 2.0, (y0 + y1 + 1) as f32 / 2.0);
        let mid = size as f32 / 2.0;
        assert!(
            (cx - mid).abs() <= 1.5 && (cy - mid).abs() <= 1.5,
            "size {size}: centre {cx},{cy}"
        );
        // White paper at the corners.
        assert_eq!(img.get_pixel(0, 0).0[0], 255);
    }
    assert!(render_glyph(&font, '火', 64).is_none(), "missing glyph");
    assert!(render_glyph(&font, ' ', 64).is_none(), "no outline");
}

#[test]
fn renders_an_image_folder_with_dedupe_and_min_fonts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let calls = std::cell::Cell::new(0);
    let report = render_with(&spec("人大山骨水火", &out, 2), |p: &Progress| {
        assert!(p.done <= p.total && p.total == 3);
        calls.set(calls.get() + 1);
    })
    .unwrap();
    assert_eq!(calls.get(), 6, "3 faces × 2 phases");
    let names: Vec<String> = tree(&out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "人/droid-subset.png",
            "人/noto-pair-0.png",
            "人/noto-pair-1.png",
            "大/droid-subset.png",
            "大/noto-pair-0.png",
            "山/droid-subset.png",
            "山/noto-pair-0.png",
            "骨/noto-pair-0.png",
            "骨/noto-pair-1.png",
        ]
    );
    assert_eq!(report.chars_requested, 6);
    assert_eq!(report.chars_missing, 1, "火 is in no font");
    assert_eq!(report.classes_dropped, 1, "水 has one face < min_fonts");
    assert_eq!(report.classes_kept, 4);
    assert_eq!(report.images, 9);
    let jp = &report.faces[1];
    assert_eq!(
        (
            jp.name.as_str(),
            jp.face,
            jp.covered,
            jp.duplicates,
            jp.written
        ),
        ("noto-pair-1", 1, 3, 1, 2)
    );
    let droid = &report.faces[2];
    assert_eq!((droid.covered, droid.duplicates, droid.written), (4, 0, 3));

    let png = image::open(out.join("骨/noto-pair-1.png")).unwrap();
    assert_eq!(png.color(), image::ColorType::L8);
    assert_eq!((png.width(), png.height()), (48, 48));
    let sc = image::open(out.join("骨/noto-pair-0.png")).unwrap();
    assert_ne!(
        png.as_bytes(),
        sc.as_bytes(),
        "SC and JP draw 骨 differently"
    );

    let all = render(&spec("水", &dir.path().join("one"), 1)).unwrap();
    assert_eq!(
        (all.classes_kept, all.images),
        (1, 1),
        "min_fonts 1 keeps a one-face class"
    );
}

#[test]
fn same_inputs_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    render(&spec("人大山骨", &a, 1)).unwrap();
    render(&spec("人大山骨", &b, 1)).unwrap();
    let (ta, tb) = (tree(&a), tree(&b));
    assert_eq!(ta.len(), 9);
    assert_eq!(ta, tb);
}

#[test]
fn bad_fonts_and_outputs_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.ttf");
    fs::write(&garbage, b"this is not a font at all, just some text").unwrap();
    let empty = dir.path().join("empty.otf");
    fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("missing.ttf");
    for (i, (font, kind)) in [(&garbage, "font"), (&empty, "font"), (&missing, "io")]
        .into_iter()
        .enumerate()
    {
        let mut s = spec("人", &dir.path().join(format!("out-{i}")), 1);
        s.fonts = vec![droid(), font.clone()];
        let e = render(&s).unwrap_err();
        assert!(e.to_string().contains(&font.display().to_string()), "{e}");
        match kind {
            "font" => assert!(matches!(e, GlyphError::Font { .. }), "{e}"),
            _ => assert!(matches!(e, GlyphError::Io { .. }), "{e}"),
        }
        // Nothing is written before every font has been read.
        assert!(!s.out.exists(), "{}", s.out.display());
    }

    let busy = dir.path().join("busy");
    fs::create_dir_all(&busy).unwrap();
    fs::write(busy.join("x"), b"x").unwrap();
    let e = render(&spec("人", &busy, 1)).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");

    let mut twice = spec("人", &dir.path().join("twice"), 1);
    twice.fonts = vec![droid(), droid()];
    assert!(
        render(&twice)
            .unwrap_err()
            .to_string()
            .contains("same file stem")
    );

    let mut tiny = spec("人", &dir.path().join("tiny"), 1);
    tiny.size = 2;
    assert!(matches!(render(&tiny), Err(GlyphError::Spec(_))));
}

#[test]
fn awkward_characters_get_safe_folder_names() {
    assert_eq!(class_dir_name('人'), "人");
    assert_eq!(class_dir_name('/'), "U+002F");
    assert_eq!(class_dir_name('.'), "U+002E");
    assert_eq!(class_dir_name('\u{3000}'), "U+3000");
}
