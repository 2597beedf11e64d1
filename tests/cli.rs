//! End-to-end: the `metricann` binary on the committed glyph fixture, with the
//! ndarray backend, as a user would run it — train, extract, build-index,
//! search, update, remove, eval — plus the bad-input and crash contracts.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

fn metricann(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metricann"))
        .args(args)
        .env("METRICANN_LOG", "warn")
        .output()
        .expect("the metricann binary runs")
}

fn ok_json(args: &[&str]) -> Value {
    let out = metricann(args);
    assert!(
        out.status.success(),
        "metricann {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Exit code 2 and a message on stderr naming `culprit`.
fn assert_user_error(out: &Output, culprit: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, stderr: {stderr}"
    );
    assert!(
        stderr.contains(culprit),
        "stderr does not name {culprit}: {stderr}"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Copies the first `n` images (sorted) of every class folder under `src` into `dst`,
/// or all but the first `n` when `rest` is set.
fn split_folder(src: &Path, dst: &Path, n: usize, rest: bool) {
    for class in sorted_dir(src) {
        let files = sorted_dir(&class);
        let chosen: Vec<_> = if rest {
            files.into_iter().skip(n).collect()
        } else {
            files.into_iter().take(n).collect()
        };
        let out = dst.join(class.file_name().unwrap());
        fs::create_dir_all(&out).unwrap();
        for f in chosen {
            fs::copy(&f, out.join(f.file_name().unwrap())).unwrap();
        }
    }
}

fn sorted_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// One trained tiny model shared by every test (training is the slow part).
struct Trained {
    _dir: tempfile::TempDir,
    model: PathBuf,
    report: Value,
}

fn trained() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model.bundle");
        let ckpt = dir.path().join("ckpt");
        let report = ok_json(&[
            "train",
            "--data",
            s(&fixture("glyphs/train")),
            "--val-data",
            s(&fixture("glyphs/val")),
            "--epochs",
            "2",
            // Small batches: more steps in two epochs, so batch norm's running
            // statistics (used at inference) settle.
            "--batch-size",
            "8",
            "--per-class",
            "4",
            "--loss",
            "triplet",
            "--margin",
            "0.2",
            "--lr",
            "0.003",
            "--backend",
            "ndarray",
            "--patience",
            "3",
            "--ckpt-dir",
            s(&ckpt),
            "--model-out",
            s(&model),
            "--input-size",
            "32",
            "--widths",
            "8,16,32",
            "--embedding-dim",
            "32",
            "--json",
        ]);
        Trained {
            _dir: dir,
            model,
            report,
        }
    })
}

#[test]
fn training_improves_on_the_untrained_network_and_writes_its_artifacts() {
    let t = trained();
    let history = t.report["history"].as_array().expect("history");
    assert_eq!(history.len(), 3, "epoch 0 plus two epochs: {}", t.report);
    let map = |e: &Value| e["val_map_at_r"].as_f64().unwrap();
    let best = t.report["best_map_at_r"].as_f64().unwrap();
    assert!(
        best > map(&history[0]),
        "validation MAP@R never beat the untrained network: {}",
        t.report
    );
    let ckpt = t.model.parent().unwrap().join("ckpt");
    for f in [
        "epoch-001.bundle",
        "epoch-002.bundle",
        "epoch-002.optim",
        "best.bundle",
        "metrics.jsonl",
    ] {
        assert!(ckpt.join(f).exists(), "missing checkpoint artifact {f}");
    }
    let lines = fs::read_to_string(ckpt.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
}

#[test]
fn resume_continues_from_a_checkpoint() {
    let t = trained();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = t.model.parent().unwrap().join("ckpt");
    let report = ok_json(&[
        "train",
        "--data",
        s(&fixture("glyphs/train")),
        "--val-data",
        s(&fixture("glyphs/val")),
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--lr",
        "0.003",
        "--backend",
        "ndarray",
        "--ckpt-dir",
        s(&dir.path().join("c")),
        "--model-out",
        s(&dir.path().join("m.bundle")),
        "--resume",
        s(&ckpt.join("epoch-002.bundle")),
        "--input-size",
        "32",
        "--widths",
        "8,16,32",
        "--embedding-dim",
        "32",
        "--json",
    ]);
    let epochs: Vec<u64> = report["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, vec![0, 1, 2, 3], "resumed history: {report}");
}

#[test]
fn pipeline_extract_index_search_update_remove_eval() {
    let t = trained();
    let model = s(&t.model);
    let work = tempfile::tempdir().unwrap();
    let enroll = work.path().join("enroll");
    let queries = work.path().join("queries");
    split_folder(&fixture("glyphs/train"), &enroll, 3, false);
    split_folder(&fixture("glyphs/train"), &queries, 3, true);

    let emb = work.path().join("emb");
    let extracted = ok_json(&[
        "extract",
        "--model",
        model,
        "--data",
        s(&enroll),
        "--out",
        s(&emb),
        "--json",
    ]);
    assert_eq!(extracted["dim"], 32);
    let vectors = fs::read(emb.join("vectors.npy")).unwrap();
    assert_eq!(&vectors[..6], b"\x93NUMPY");
    let labels = fs::read_to_string(emb.join("labels.tsv")).unwrap();
    assert_eq!(
        labels.lines().count() as u64,
        extracted["vectors"].as_u64().unwrap() + 1
    );
    assert_embeddings_spread(&emb);

    let index = work.path().join("index");
    let built = ok_json(&[
        "build-index",
        "--embeddings",
        s(&emb),
        "--out",
        s(&index),
        "--segment-size",
        "32",
        "--json",
    ]);
    assert_eq!(built["classes"], 32);
    assert!(
        built["segments"].as_array().unwrap().len() >= 2,
        "expected sealed segments: {built}"
    );
    // A bulk build into one graph holds the same vectors in one segment.
    let one = ok_json(&[
        "build-index",
        "--embeddings",
        s(&emb),
        "--out",
        s(&work.path().join("one-graph")),
        "--segment-size",
        "32",
        "--optimize",
        "--json",
    ]);
    let segments = one["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 1, "{one}");
    assert_eq!(one["vectors"], built["vectors"]);
    assert_eq!(one["classes"], 32);
    let file = work.path().join("one-graph.export");
    let exported = ok_json(&[
        "export",
        "--index",
        s(&work.path().join("one-graph")),
        "--out",
        s(&file),
        "--json",
    ]);
    let bytes = fs::read(&file).unwrap();
    assert_eq!(exported["export_bytes"], bytes.len());
    let (back, _) = metricann::gallery::Gallery::import_bytes(&bytes, None).unwrap();
    assert_eq!(
        back.stats().vectors as u64,
        one["vectors"].as_u64().unwrap()
    );
    // Quantised in place: the graph's vectors become codes and residual
    // codes, then codes alone; the classes stay.
    assert_eq!(segments[0]["kind"], "hnsw", "{one}");
    assert_eq!(one["quantization"], "none", "{one}");
    let fine = ok_json(&[
        "quantize",
        "--index",
        s(&work.path().join("one-graph")),
        "--mode",
        "int8-residual",
        "--json",
    ]);
    assert_eq!(fine["quantization"], "int8-residual", "{fine}");
    assert!(
        fine["memory_bytes"].as_u64() < one["memory_bytes"].as_u64(),
        "{fine}"
    );
    let quantized = ok_json(&[
        "quantize",
        "--index",
        s(&work.path().join("one-graph")),
        "--json",
    ]);
    assert_eq!(quantized["quantization"], "int8", "{quantized}");
    assert!(quantized["memory_bytes"].as_u64() < fine["memory_bytes"].as_u64());
    assert_eq!(quantized["segments"][0]["kind"], "hnsw-int8", "{quantized}");
    assert_eq!(quantized["vectors"], one["vectors"]);
    assert_eq!(quantized["classes"], 32);
    assert!(
        quantized["written_bytes"].as_u64().unwrap() > 0,
        "{quantized}"
    );
    let reopened = ok_json(&[
        "stats",
        "--index",
        s(&work.path().join("one-graph")),
        "--json",
    ]);
    assert_eq!(reopened["segments"], quantized["segments"]);

    // Unseen fonts of known characters: the true class is in the top 5 for most.
    let query_files: Vec<PathBuf> = sorted_dir(&queries)
        .iter()
        .flat_map(|c| sorted_dir(c).into_iter().take(2))
        .collect();
    let mut args = vec![
        "search",
        "--model",
        model,
        "--index",
        s(&index),
        "--k",
        "5",
        "--json",
    ];
    for q in &query_files {
        args.extend(["--image", s(q)]);
    }
    let found = ok_json(&args);
    let results = found["results"].as_array().unwrap();
    assert_eq!(results.len(), query_files.len());
    let hits = results
        .iter()
        .zip(&query_files)
        .filter(|(r, q)| {
            let truth = q.parent().unwrap().file_name().unwrap().to_str().unwrap();
            r["matches"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["label"] == truth)
        })
        .count();
    assert!(
        hits * 2 > results.len(),
        "true class in top-5 for only {hits}/{} queries",
        results.len()
    );

    // Update with new classes: each is found from its own enrollment image at once.
    let updated = ok_json(&[
        "update",
        "--model",
        model,
        "--index",
        s(&index),
        "--new-data",
        s(&fixture("glyphs/new")),
        "--json",
    ]);
    assert_eq!(updated["classes"], 34);
    let new_class = sorted_dir(&fixture("glyphs/new")).remove(0);
    let label = new_class.file_name().unwrap().to_str().unwrap().to_string();
    let own_image = sorted_dir(&new_class).remove(0);
    let top = ok_json(&[
        "search",
        "--model",
        model,
        "--index",
        s(&index),
        "--image",
        s(&own_image),
        "--k",
        "3",
        "--json",
    ]);
    assert_eq!(top["results"][0]["matches"][0]["label"], label.as_str());
    assert!(top["results"][0]["matches"][0]["score"].as_f64().unwrap() > 0.999);

    // Remove: gone.
    let removed = ok_json(&["remove", "--index", s(&index), "--class", &label, "--json"]);
    assert_eq!(removed["classes"], 33);
    let after = ok_json(&[
        "search",
        "--model",
        model,
        "--index",
        s(&index),
        "--image",
        s(&own_image),
        "--k",
        "40",
        "--json",
    ]);
    assert!(
        after["results"][0]["matches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["label"] != label.as_str())
    );
    let missing = metricann(&["remove", "--index", s(&index), "--class", &label]);
    assert_user_error(&missing, &label);

    // Eval prints every metric.
    let eval = ok_json(&[
        "eval",
        "--model",
        model,
        "--data",
        s(&fixture("glyphs/val")),
        "--shots",
        "1",
        "--seed",
        "3",
        "--json",
    ]);
    for key in [
        "classes", "queries", "shots", "top1", "top5", "mrr", "map_at_r",
    ] {
        assert!(eval.get(key).is_some(), "eval lacks {key}: {eval}");
    }
    assert_eq!(eval["shots"], 1);
    let top1 = eval["top1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&top1) && eval["top5"].as_f64().unwrap() >= top1);
}

/// Unrelated images must not share one direction: the "unknown" threshold of
/// search lives in the gap between same-class and other-class cosines. A
/// collapsed model (every cosine above 0.999) still ranks, so MAP@R alone
/// would not notice. The two-epoch fixture model is weak (validation MAP@R
/// about 0.3), so the gap asked of it is small; the collapse it guards against
/// put unrelated images at 0.9995.
fn assert_embeddings_spread(emb: &Path) {
    let vectors = metricann_trainer::npy::read_f32(&emb.join("vectors.npy")).unwrap();
    let labels: Vec<String> = fs::read_to_string(emb.join("labels.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit('\t').next().unwrap().to_string())
        .collect();
    let (mut same, mut other) = (Vec::new(), Vec::new());
    for i in 0..vectors.len() {
        for j in i + 1..vectors.len() {
            let cos: f32 = vectors[i].iter().zip(&vectors[j]).map(|(a, b)| a * b).sum();
            if labels[i] == labels[j] {
                same.push(cos);
            } else {
                other.push(cos);
            }
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (same, other) = (mean(&same), mean(&other));
    assert!(
        other < 0.8 && same > other + 0.03,
        "embeddings collapsed: mean cosine {same:.4} within classes, {other:.4} across"
    );
}

/// An index with a few sealed segments over the val classes, for the failure tests.
fn small_index(model: &str, dir: &Path) -> PathBuf {
    let emb = dir.join("emb");
    ok_json(&[
        "extract",
        "--model",
        model,
        "--data",
        s(&fixture("glyphs/val")),
        "--out",
        s(&emb),
        "--json",
    ]);
    let index = dir.join("index");
    ok_json(&[
        "build-index",
        "--embeddings",
        s(&emb),
        "--out",
        s(&index),
        "--segment-size",
        "16",
        "--json",
    ]);
    index
}

fn search_ok(model: &str, index: &Path) -> Value {
    let image = sorted_dir(&sorted_dir(&fixture("glyphs/val"))[0]).remove(0);
    ok_json(&[
        "search",
        "--model",
        model,
        "--index",
        s(index),
        "--image",
        s(&image),
        "--k",
        "3",
        "--json",
    ])
}

#[test]
fn bad_inputs_are_clear_errors_and_the_index_survives_them() {
    let t = trained();
    let model = s(&t.model);
    let work = tempfile::tempdir().unwrap();
    let index = small_index(model, work.path());
    let before = search_ok(model, &index);

    for bad in ["corrupt.jpg", "empty.png", "text.png"] {
        let path = fixture("bad").join(bad);
        let out = metricann(&[
            "search",
            "--model",
            model,
            "--index",
            s(&index),
            "--image",
            s(&path),
            "--k",
            "3",
        ]);
        assert_user_error(&out, bad);
    }

    // A class folder with no images, and a folder of unreadable images, refused by update.
    let empty_class = work.path().join("new-empty");
    fs::create_dir_all(empty_class.join("空")).unwrap();
    let out = metricann(&[
        "update",
        "--model",
        model,
        "--index",
        s(&index),
        "--new-data",
        s(&empty_class),
    ]);
    assert_user_error(&out, "空");
    let bad_class = work.path().join("new-bad");
    fs::create_dir_all(bad_class.join("坏")).unwrap();
    fs::copy(fixture("bad/corrupt.jpg"), bad_class.join("坏/corrupt.jpg")).unwrap();
    let out = metricann(&[
        "update",
        "--model",
        model,
        "--index",
        s(&index),
        "--new-data",
        s(&bad_class),
    ]);
    assert_user_error(&out, "corrupt.jpg");

    // A bundle with one flipped byte.
    let mut bytes = fs::read(&t.model).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let flipped = work.path().join("flipped.bundle");
    fs::write(&flipped, bytes).unwrap();
    let out = metricann(&[
        "search",
        "--model",
        s(&flipped),
        "--index",
        s(&index),
        "--image",
        s(&fixture("bad/empty.png")),
        "--k",
        "1",
    ]);
    assert_user_error(&out, "flipped.bundle");

    // An index built by another model.
    let other = work.path().join("other.bundle");
    ok_json(&[
        "train",
        "--data",
        s(&fixture("glyphs/val")),
        "--epochs",
        "0",
        "--seed",
        "7",
        "--backend",
        "ndarray",
        "--ckpt-dir",
        s(&work.path().join("other-ckpt")),
        "--model-out",
        s(&other),
        "--input-size",
        "32",
        "--widths",
        "8,16,32",
        "--embedding-dim",
        "32",
        "--json",
    ]);
    let image = sorted_dir(&sorted_dir(&fixture("glyphs/val"))[0]).remove(0);
    let out = metricann(&[
        "search",
        "--model",
        s(&other),
        "--index",
        s(&index),
        "--image",
        s(&image),
        "--k",
        "1",
    ]);
    assert_user_error(&out, "model mismatch");

    // Everything above left the index as it was.
    assert_eq!(search_ok(model, &index), before);

    // A truncated segment file: named, exit 2; the rest stays searchable on request.
    let segment = sorted_dir(&index)
        .into_iter()
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seg-"))
        .expect("a sealed segment file");
    let len = fs::metadata(&segment).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&segment).unwrap();
    f.set_len(len / 2).unwrap();
    let out = metricann(&[
        "search",
        "--model",
        model,
        "--index",
        s(&index),
        "--image",
        s(&image),
        "--k",
        "1",
    ]);
    assert_user_error(&out, segment.file_name().unwrap().to_str().unwrap());
    let out = metricann(&[
        "search",
        "--model",
        model,
        "--index",
        s(&index),
        "--image",
        s(&image),
        "--k",
        "1",
        "--skip-damaged",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
}

fn class_count(index: &Path) -> u64 {
    let stats = ok_json(&["stats", "--index", s(index), "--json"]);
    stats["classes"].as_u64().expect("class count")
}

#[test]
fn a_killed_update_leaves_the_old_or_the_new_index() {
    let t = trained();
    let model = s(&t.model);
    let work = tempfile::tempdir().unwrap();
    let index = small_index(model, work.path());
    let old = class_count(&index);
    let new_data = fixture("glyphs/train");
    // Crash the writer after each possible number of blob writes (fault injection in
    // the store), then kill a real process at a few points in time.
    for writes in 0..6 {
        let out = Command::new(env!("CARGO_BIN_EXE_metricann"))
            .args([
                "update",
                "--model",
                model,
                "--index",
                s(&index),
                "--new-data",
                s(&new_data),
            ])
            .env("METRICANN_FAULT_AFTER_WRITES", writes.to_string())
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "the injected fault did not fire at {writes} writes"
        );
        assert_eq!(
            class_count(&index),
            old,
            "a crash after {writes} writes changed the index"
        );
    }
    for delay_ms in [50u64, 300, 1500] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_metricann"))
            .args([
                "update",
                "--model",
                model,
                "--index",
                s(&index),
                "--new-data",
                s(&new_data),
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let now = class_count(&index);
        if status.success() {
            assert!(now > old);
            return;
        }
        assert!(
            now == old || now == old + 32,
            "after a kill at {delay_ms} ms: {now} classes, was {old}"
        );
        if now != old {
            return;
        }
    }
}

#[test]
fn inspect_prints_the_header_and_records_provenance_without_touching_weights() {
    let t = trained();
    let header = ok_json(&["inspect", "--model", s(&t.model)]);
    assert_eq!(header["embedding_dim"], 32);
    // The fingerprint galleries are tagged with; annotations leave it alone.
    assert!(
        header["fingerprint"]
            .as_str()
            .is_some_and(|f| f.len() >= 16),
        "{header}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("annotated.bundle");
    let annotated = ok_json(&[
        "inspect",
        "--model",
        s(&t.model),
        "--set",
        "fonts=[\"a.ttf\",\"b.ttc\"]",
        "--set",
        "note=plain text",
        "--out",
        s(&out),
    ]);
    assert_eq!(annotated["fingerprint"], header["fingerprint"]);
    let reread = ok_json(&["inspect", "--model", s(&out)]);
    assert_eq!(reread["training"]["extra"]["fonts"][1], "b.ttc");
    assert_eq!(reread["training"]["extra"]["note"], "plain text");
    // --set without --out is a usage error, not a silent no-op.
    assert_user_error(
        &metricann(&["inspect", "--model", s(&t.model), "--set", "k=v"]),
        "--out",
    );
}

#[test]
fn stress_run_keeps_every_acknowledged_write_and_refuses_a_second_writer() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dir.path().join("g");
    let r = ok_json(&[
        "stress",
        "--dir",
        s(&gallery),
        "--seconds",
        "2",
        "--cycles",
        "20",
        "--dim",
        "16",
        "--json",
    ]);
    assert!(r["mutations"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["violations"].as_array().unwrap().len(), 0, "{r}");
    assert!(r["reader"]["opens"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["reader"]["locked_as_expected"].as_u64().unwrap() > 0,
        "{r}"
    );
    assert_eq!(r["final_matches_journal"], true, "{r}");
    assert_eq!(r["memory"].as_array().unwrap().len(), 11, "{r}");
    assert!(
        gallery.join("manifest").exists(),
        "--dir keeps the gallery it stressed"
    );
}
