//! The `metricann` command line: one subcommand per pipeline stage.

mod adapt;
pub(crate) mod common;
mod dataset;
mod evaluation;
mod gallery;
mod model;

use clap::{Parser, Subcommand};

use metricann::Result;

pub use adapt::BenchAdaptArgs;
pub(crate) use common::{embed_images, load_images, open_folder};
pub use dataset::GlyphArgs;
pub use evaluation::{BenchTrainArgs, EvalArgs};
pub use gallery::{
    BuildIndexArgs, ExportArgs, QuantizeArgs, RemoveArgs, SearchArgs, StatsArgs, UpdateArgs,
};
pub use model::{ExtractArgs, InspectArgs, TrainArch, TrainArgs};

const EXAMPLES: &str = "\
Examples:
  metricann dataset glyphs --chars gb2312-1 --fonts /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc --out data/train
  metricann train --data data/train --val-split 0.1 --epochs 30 --batch-size 128 --model-out model.bundle
  metricann extract --model model.bundle --data data/unseen --out emb/
  metricann build-index --embeddings emb/ --out gallery/
  metricann build-index --embeddings emb/ --out gallery-int8/ --quantize int8
  metricann build-index --embeddings emb/ --out gallery/ --optimize
  metricann export --index gallery/ --out gallery.export
  metricann search --model model.bundle --index gallery/ --image photo.jpg --k 5
  metricann update --model model.bundle --index gallery/ --new-data more/
  metricann remove --index gallery/ --class 猫
  metricann eval --model model.bundle --data data/unseen --shots 1 --json
  metricann import --pytorch efficientnet-lite0-57934424.pth --arch efficientnet-lite0 --out imagenet.bundle";

/// Few-shot visual recognition: train an embedding model, build a gallery, search it.
#[derive(Parser, Debug)]
#[command(name = "metricann", version, about, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an embedding model on an ImageFolder (one sub-folder per class).
    #[command(
        after_help = "Examples:\n  metricann train --data fixtures/train --val-data fixtures/val --epochs 2 --batch-size 32 --backend ndarray --model-out m.bundle\n  metricann train --data photos/train --val-split 0.1 --backend cuda --devices all   (data-parallel on every GPU)"
    )]
    Train(TrainArgs),
    /// Embed every image of an ImageFolder into vectors.npy + labels.tsv.
    #[command(
        after_help = "Example:\n  metricann extract --model m.bundle --data unseen/ --out emb/"
    )]
    Extract(ExtractArgs),
    /// Build a gallery index from extracted embeddings.
    #[command(
        after_help = "Examples:\n  metricann build-index --embeddings emb/ --out gallery/\n  metricann build-index --embeddings emb/ --out gallery/ --quantize int8\n  metricann build-index --embeddings emb/ --out gallery/ --optimize   (one graph: bulk loads)"
    )]
    BuildIndex(BuildIndexArgs),
    /// Find the classes nearest to query images.
    #[command(
        after_help = "Example:\n  metricann search --model m.bundle --index gallery/ --image a.png --image b.jpg --k 5 --json"
    )]
    Search(SearchArgs),
    /// Enroll new classes, or new examples of known ones, without rebuilding.
    #[command(
        after_help = "Example:\n  metricann update --model m.bundle --index gallery/ --new-data new/"
    )]
    Update(UpdateArgs),
    /// Remove a class from a gallery.
    #[command(after_help = "Example:\n  metricann remove --index gallery/ --class 猫")]
    Remove(RemoveArgs),
    /// Show a gallery's classes, vectors and segments.
    #[command(after_help = "Example:\n  metricann stats --index gallery/ --json")]
    Stats(StatsArgs),
    /// Quantise a gallery's float graphs to int8 codes in place (a quarter of
    /// the vectors' bytes; see the README on what it costs in recall), or to
    /// codes plus residual codes (`--mode int8-residual`: about half, float's
    /// recall).
    #[command(
        after_help = "Examples:\n  metricann build-index --embeddings emb/ --out gallery/ --optimize\n  metricann quantize --index gallery/ --json\n  metricann quantize --index gallery/ --mode int8-residual"
    )]
    Quantize(QuantizeArgs),
    /// Pack a gallery into one export file, for the npm package's
    /// `MetricAnn.import` (a gallery built here, loaded in a browser).
    #[command(
        after_help = "Example:\n  metricann build-index --embeddings emb/ --out gallery/ --optimize --quantize int8\n  metricann export --index gallery/ --out gallery.export"
    )]
    Export(ExportArgs),
    /// Print a model bundle's header; optionally record provenance in it.
    #[command(
        after_help = "Examples:\n  metricann inspect --model m.bundle\n  metricann inspect --model m.bundle --set fonts='[\"NotoSansCJK-Regular.ttc\"]' --out m2.bundle"
    )]
    Inspect(InspectArgs),
    /// Few-shot evaluation on unseen classes.
    #[command(
        after_help = "Examples:\n  metricann eval --model m.bundle --data unseen/ --shots 1\n  metricann eval --model m.bundle --data unseen/ --shots 5 --ways 20 --episodes 1000 --json\n  metricann extract --model m.bundle --data unseen/ --out emb/ && metricann eval --embeddings emb/ --shots 3\n  metricann eval --baseline pixels --data unseen/ --shots 1"
    )]
    Eval(EvalArgs),
    /// Choose a bundle's "unknown" threshold on held-out classes and record it in
    /// the header; optionally store the weights in 16 bits.
    #[command(
        after_help = "Example:\n  metricann calibrate --model objects-f32.bundle --data val/ --half --out objects.bundle --json"
    )]
    Calibrate(crate::calibrate::CalibrateArgs),
    /// Time bare training steps on random images (for framework comparisons).
    #[command(
        after_help = "Example:\n  metricann bench-train --backend cuda --batch-size 256 --input-size 64 --steps 50 --json"
    )]
    BenchTrain(BenchTrainArgs),
    /// Measure on-device adaptation: top-1 of camera-like queries of unseen classes
    /// before and after retraining the projection head on the enrolled images.
    #[command(
        after_help = "Example:\n  metricann bench-adapt --model www/models/objects.bundle --data eval/photo --classes 20 --shots 3 --json"
    )]
    BenchAdapt(BenchAdaptArgs),
    /// Benchmark the index as an ANN library: build time, memory, and per ef QPS (one thread) and recall@k.
    #[command(
        after_help = "Examples:\n  metricann bench --base base.npy --queries queries.npy --k 10 --ef 16,32,64,128,256 --json\n  metricann bench --base base.npy --queries queries.npy --gt gt.npy --k 10 --ef 64 --ef 128 --m 32 --ef-construction 100 --threads 1\n  metricann bench --base base.npy --queries queries.npy --gt gt.npy --quantize none,int8 --json\n  metricann bench --base base.npy --queries queries.npy --gt gt.npy --m 32 --save-index graph/ --json\n  metricann bench --base base.npy --queries queries.npy --gt gt.npy --index graph/ --ef 10,16,32 --json   # the same graph again"
    )]
    Bench(crate::ann_bench::BenchArgs),
    /// Benchmark enrolling classes one by one into a large gallery, with index maintenance on a background thread and searches running meanwhile.
    #[command(
        after_help = "Examples:\n  metricann bench-enroll --base base.npy --add add.npy --json\n  metricann bench-enroll --base base.npy --add add.npy --queries queries.npy --threads 16 --segment-size 1024"
    )]
    BenchEnroll(crate::enroll_bench::EnrollBenchArgs),
    /// Stress one gallery in a directory: a writer mutating it without pause while
    /// reader threads reopen, check and search it, then enroll/remove cycles with
    /// memory sampled; fails on any lost or half-applied write.
    #[command(
        after_help = "Examples:\n  metricann stress --seconds 600 --readers 2 --cycles 10000 --json > bench/results/stress-native.json\n  metricann stress --seconds 10 --cycles 100"
    )]
    Stress(crate::stress::StressArgs),
    /// Make datasets.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Turn a pretrained PyTorch checkpoint into a model bundle (the ImageNet
    /// classifier kept, so it can be checked; `train --init` fine-tunes it).
    #[command(
        after_help = "Example:\n  metricann import --pytorch efficientnet-lite0-57934424.pth --arch efficientnet-lite0 --out imagenet.bundle\n  metricann train --init imagenet.bundle --arch efficientnet-lite0 --data photos/ --val-split 0.1 --input-size 160 --model-out objects.bundle"
    )]
    Import(crate::import::ImportArgs),
}

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Render Han characters from font files into an ImageFolder (a class per character, an image per font face).
    #[command(
        after_help = "Examples:\n  metricann dataset glyphs --chars gb2312-1 --fonts /usr/share/fonts/truetype/*/*.tt? --out data/train\n  metricann dataset glyphs --chars 'U+4E00..U+4E0F' --fonts a.ttf b.ttc --out tiny/ --size 64"
    )]
    Glyphs(GlyphArgs),
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => model::train(a),
        Command::Extract(a) => model::extract(a),
        Command::BuildIndex(a) => gallery::build_index(a),
        Command::Search(a) => gallery::search(a),
        Command::Update(a) => gallery::update(a),
        Command::Remove(a) => gallery::remove(a),
        Command::Stats(a) => gallery::stats(a),
        Command::Quantize(a) => gallery::quantize(a),
        Command::Export(a) => gallery::export(a),
        Command::Inspect(a) => model::inspect(a),
        Command::Eval(a) => evaluation::eval(a),
        Command::Calibrate(a) => model::calibrate(a),
        Command::BenchTrain(a) => evaluation::bench_train(a),
        Command::BenchAdapt(a) => adapt::bench_adapt(a),
        Command::Bench(a) => crate::ann_bench::main(&a),
        Command::BenchEnroll(a) => crate::enroll_bench::main(&a),
        Command::Stress(a) => crate::stress::main(&a),
        Command::Dataset(DatasetCommand::Glyphs(a)) => dataset::glyphs(a),
        Command::Import(a) => model::import(a),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// `--help` is the only manual most users read: every command and every
    /// option in it says, in one line, what it is for.
    #[test]
    fn every_command_and_option_has_one_line_of_help() {
        let mut missing = Vec::new();
        undocumented(&Cli::command(), "metricann", &mut missing);
        assert!(
            missing.is_empty(),
            "without one line of help: {}",
            missing.join(", ")
        );
    }

    fn undocumented(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        let one_line = |help: Option<&clap::builder::StyledStr>| {
            help.map(ToString::to_string)
                .is_some_and(|h| !h.trim().is_empty() && !h.contains('\n'))
        };
        for arg in command.get_arguments() {
            if matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            if !one_line(arg.get_help()) {
                let name = arg.get_long().unwrap_or(arg.get_id().as_str());
                missing.push(format!("{path} --{name}"));
            }
        }
        for sub in command.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if !one_line(sub.get_about()) {
                missing.push(sub_path.clone());
            }
            undocumented(sub, &sub_path, missing);
        }
    }
}
