#include "admin/commands.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "admin/progress_printer.h"
#include "common/cli.h"
#include "common/json_writer.h"
#include "ingest/ingester.h"
#include "ingest/sample.h"
#include "ingest/task_registry.h"
#include "common/status_macros.h"
#include "storage/publish.h"
#include "storage/store.h"
#include "storage/verify.h"

namespace m3serve::admin {
namespace {

using storage::Store;

// Parse flags; on error or --help print and set *exit_code. Returns true to go on.
bool ParseOrExit(FlagSet& flags, int argc, char** argv, std::vector<std::string>* args,
                 int* exit_code) {
  return flags.ParseOrExit(argc, argv, 2, absl::StrCat("m3serve-admin ", argv[1]), args, exit_code);
}

int Fatal(const char* cmd, const absl::Status& s) {
  std::fprintf(stderr, "m3serve-admin %s: %s\n", cmd, s.ToString().c_str());
  return kExitFatal;
}

int Usage(const char* cmd, const std::string& msg) {
  std::fprintf(stderr, "m3serve-admin %s: %s (see --help)\n", cmd, msg.c_str());
  return kExitUsage;
}

// A store, or the current version of a publish root (storage/publish.h).
absl::StatusOr<std::unique_ptr<Store>> OpenReadOnly(const std::string& db) {
  M3SERVE_ASSIGN_OR_RETURN(storage::ResolvedStore resolved, storage::ResolveStore(db));
  return storage::OpenResolved(resolved, {.read_only = true});
}

std::string Pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

}  // namespace

// ---------------------------------------------------------------------------

int IngestCommand(int argc, char** argv) {
  std::string db, task, split, lang, rejects, metadata, overrides, image_check = "header",
      progress = "auto";
  std::vector<std::string> tasks;
  int64_t threads = 0, max_line = 1ll << 30, max_pixels = 100'000'000, commit_bytes = 64ll << 20,
          english_ahead = 256ll << 20;
  bool json = false, verify_sources = false;
  FlagSet flags("m3serve-admin ingest --db DIR [flags] SOURCE...",
                "Read M3IT / M3IT-80 repositories or canonical JSONL files into the store at DIR.\n"
                "A SOURCE is an M3IT repository root (data/<category>/<folder>/...), an M3IT-80\n"
                "root (data/<task>/<task>_<split>_<lang>.jsonl), or one canonical JSONL file\n"
                "(instruction, inputs, image_base64_str, outputs, meta) with --task/--split/--lang.\n"
                "Bad lines are written to the rejects file and never stop the run. Ingesting a\n"
                "source again adds nothing; an interrupted ingest continues where it stopped.\n"
                "A file is known by the hash of its content: a re-run re-reads a file whose size,\n"
                "modification time or inode changed, and ingests the group of a file whose\n"
                "content changed again.");
  flags.String("db", &db, "store directory (created if missing)", "DIR");
  flags.String("task", &task, "task of a canonical JSONL SOURCE", "NAME");
  flags.String("split", &split, "split of a canonical JSONL SOURCE (train|validation|test)", "NAME");
  flags.String("lang", &lang, "language of a canonical JSONL SOURCE (ISO 639-1/3)", "CODE");
  flags.List("tasks", &tasks, "only ingest these tasks (HF config names)");
  flags.Int("threads", &threads, "parsing / image-check threads (0 = one per core)");
  flags.String("rejects", &rejects, "JSONL file receiving rejected lines (default DIR/rejects.jsonl)", "FILE");
  flags.Int("max-line-bytes", &max_line, "reject lines longer than this");
  flags.Int("max-image-pixels", &max_pixels, "reject images whose header claims more pixels");
  flags.String("image-check", &image_check, "header: format, size and trailer; decode: also decode", "MODE");
  flags.String("task-metadata", &metadata, "task metadata file (default: data/m3it_tasks.json shipped with m3serve)", "FILE");
  flags.String("task-overrides", &overrides, "operator overrides of task metadata (same format)", "FILE");
  flags.String("progress", &progress, "auto | bar | log | none", "MODE");
  flags.Int("commit-bytes", &commit_bytes, "commit to the store every this many bytes of rows");
  flags.Int("english-ahead-bytes", &english_ahead,
            "M3IT-80: load the English *_500 rows ahead, up to this many bytes of them not yet used "
            "(held in memory; 0 = each when its first translated file is read)");
  flags.Bool("verify-sources", &verify_sources,
             "re-hash every ingested file, even when its size, time and inode are unchanged");
  flags.Bool("json", &json, "print a machine-readable summary on stdout");
  flags.set_epilog(
      "exit status:\n  0  all lines ingested\n  3  some lines rejected (see the rejects file); the rest was ingested\n"
      "  1  fatal error (store not writable, SOURCE not a dataset)\n  2  usage error");
  std::vector<std::string> sources;
  int code;
  if (!ParseOrExit(flags, argc, argv, &sources, &code)) return code;
  if (db.empty()) return Usage("ingest", "--db is required");
  if (sources.empty()) return Usage("ingest", "no SOURCE given");
  if (image_check != "header" && image_check != "decode") {
    return Usage("ingest", "--image-check must be header or decode");
  }
  ingest::IngestOptions options;
  ProgressMode progress_mode;
  if (progress == "auto") progress_mode = ProgressMode::kAuto;
  else if (progress == "bar") progress_mode = ProgressMode::kBar;
  else if (progress == "log") progress_mode = ProgressMode::kLog;
  else if (progress == "none") progress_mode = ProgressMode::kNone;
  else return Usage("ingest", "--progress must be auto, bar, log or none");
  if (max_line <= 0 || max_pixels <= 0 || threads < 0 || commit_bytes <= 0) {
    return Usage("ingest",
                 "--max-line-bytes, --max-image-pixels, --commit-bytes and --threads must be positive");
  }
  if (english_ahead < 0) return Usage("ingest", "--english-ahead-bytes must be 0 or more");

  if (metadata.empty()) metadata = ingest::TaskRegistry::DefaultMetadataPath();
  auto registry = ingest::TaskRegistry::Load(metadata, overrides);
  if (!registry.ok()) return Fatal("ingest", registry.status());
  // Bulk load: no WAL; atomic flushes keep rows and progress consistent, and
  // Ingest() flushes before returning.
  auto store = Store::Open({.path = db, .bulk_ingest = true});
  if (!store.ok()) return Fatal("ingest", store.status());

  options.sources = sources;
  options.discover = {task, split, lang, tasks};
  options.threads = static_cast<int>(threads);
  options.rejects_path = rejects;
  options.max_line_bytes = static_cast<uint64_t>(max_line);
  options.images.max_pixels = static_cast<uint64_t>(max_pixels);
  options.images.full_decode = image_check == "decode";
  options.commit_bytes = static_cast<size_t>(commit_bytes);
  options.verify_sources = verify_sources;
  options.english_ahead_bytes = static_cast<uint64_t>(english_ahead);
  auto printer = std::make_unique<ProgressPrinter>(progress_mode);
  options.on_progress = [&printer](const ingest::IngestProgress& p) {
    printer->Update(p.bytes_done, p.bytes_total, p.rejected, p.final);
  };
  auto report = ingest::Ingest(store->get(), *registry, options);
  printer.reset();  // ends the bar's line before the summary
  if (!report.ok()) {
    Fatal("ingest", report.status());
    // After a failed write (disk full, file-size limit) RocksDB 7.8 can trip an
    // internal assertion while closing. Everything committed is on disk and
    // consistent (atomic flushes), so leave without closing the database.
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(kExitFatal);
  }
  const ingest::IngestReport& r = *report;

  if (json) {
    JsonWriter w(2);
    w.BeginObject().Key("files").BeginArray();
    for (const auto& f : r.files) {
      w.BeginObject().Key("path").String(f.path).Key("rel_path").String(f.rel_path)
          .Key("task").String(f.group.task).Key("split").String(f.group.split)
          .Key("lang").String(f.group.lang).Key("status").String(ingest::FileStatusName(f.status))
          .Key("note").String(f.note)
          .Key("lines").Uint(f.lines).Key("empty_lines").Uint(f.empty_lines)
          .Key("rows").Uint(f.rows).Key("instances").Uint(f.instances)
          .Key("rejected").Uint(f.rejected).EndObject();
    }
    w.EndArray().Key("warnings").BeginArray();
    for (const auto& s : r.warnings) w.String(s);
    w.EndArray().Key("totals").BeginObject()
        .Key("files").Uint(r.files.size()).Key("lines").Uint(r.lines)
        .Key("empty_lines").Uint(r.empty_lines).Key("rows").Uint(r.rows)
        .Key("instances").Uint(r.instances).Key("rejected").Uint(r.rejected)
        .Key("new_images").Uint(r.new_images).Key("swept_images").Uint(r.swept_images)
        .Key("bytes_read").Uint(r.bytes_read)
        .Key("image_index_built").Bool(r.image_index_built)
        .Key("image_index_seconds").Double(r.image_index_seconds)
        .Key("seconds").Double(r.seconds).EndObject()
        .Key("rejects_file").String(r.rejected ? r.rejects_path : "")
        .Key("exit_code").Int(r.ExitCode()).EndObject();
    std::cout << w.str() << std::endl;
  } else {
    size_t width = 20;
    for (const auto& f : r.files) width = std::max(width, f.rel_path.size() + 2);
    for (const auto& f : r.files) {
      std::cout << Pad(f.rel_path, width) << Pad(f.group.ToString(), 28)
                << absl::StrFormat("lines %-7d rows %-7d instances %-7d rejected %-5d %s", f.lines,
                                   f.rows, f.instances, f.rejected,
                                   ingest::FileStatusName(f.status))
                << (f.note.empty() ? "" : absl::StrCat(": ", f.note)) << "\n";
    }
    for (const auto& s : r.warnings) std::cout << "warning: " << s << "\n";
    std::cout << absl::StrFormat(
        "ingested %d rows (%d instances, %d new images) from %d files, %d lines read, %d empty, "
        "%d rejected, %.1f MB in %.1f s\n",
        r.rows, r.instances, r.new_images, r.files.size(), r.lines, r.empty_lines, r.rejected,
        r.bytes_read / 1e6, r.seconds);
    if (r.swept_images) {
      std::cout << "deleted " << r.swept_images << " images no instance refers to any more\n";
    }
    if (r.image_index_built) {
      std::cout << absl::StrFormat("image index built in %.1f s\n", r.image_index_seconds);
    }
    if (r.rejected) std::cout << "rejected lines: " << r.rejects_path << "\n";
  }
  return r.ExitCode();
}

// ---------------------------------------------------------------------------

namespace {

const char* ImageIndexStateName(storage::VerifyReport::ImageIndexState s) {
  switch (s) {
    case storage::VerifyReport::ImageIndexState::kAbsent: return "absent";
    case storage::VerifyReport::ImageIndexState::kCurrent: return "current";
    case storage::VerifyReport::ImageIndexState::kStale: return "stale";
  }
  return "unknown";
}

}  // namespace

int StatsCommand(int argc, char** argv) {
  std::string db;
  bool json = false;
  FlagSet flags("m3serve-admin stats --db DIR [--json]",
                "Print the catalog of a store: instances per task, split and language, unique\n"
                "images, and per task its category, license, commercial use and instructions.");
  flags.String("db", &db, "store directory", "DIR");
  flags.Bool("json", &json, "machine-readable output");
  std::vector<std::string> args;
  int code;
  if (!ParseOrExit(flags, argc, argv, &args, &code)) return code;
  if (db.empty()) return Usage("stats", "--db is required");
  if (!args.empty()) return Usage("stats", "unexpected argument '" + args[0] + "'");
  auto store = OpenReadOnly(db);
  if (!store.ok()) return Fatal("stats", store.status());
  auto catalog = (*store)->ReadCatalog();
  if (!catalog.ok()) return Fatal("stats", catalog.status());
  const storage::Catalog& c = *catalog;

  std::map<std::string, uint64_t> instructions, task_instances;
  std::map<std::string, std::map<std::string, uint64_t>> by_lang;
  for (const auto& [key, pool] : c.pools) {
    instructions[key.first] += pool.size();
    by_lang[key.first][key.second] = pool.size();
  }
  for (const auto& [g, n] : c.counts) task_instances[g.task] += n;

  if (json) {
    JsonWriter w(2);
    w.BeginObject().Key("instances").Uint(c.TotalInstances())
        .Key("unique_images").Uint(c.unique_images)
        .Key("fingerprint").String(c.fingerprint.Hex())
        .Key("groups").BeginArray();
    for (const auto& [g, n] : c.counts) {
      if (n == 0) continue;
      w.BeginObject().Key("task").String(g.task).Key("split").String(g.split)
          .Key("lang").String(g.lang).Key("instances").Uint(n).EndObject();
    }
    w.EndArray().Key("tasks").BeginArray();
    for (const auto& [name, t] : c.tasks) {
      w.BeginObject().Key("name").String(name).Key("category").String(t.category)
          .Key("license").String(t.license).Key("license_text").String(t.license_text)
          .Key("commercial_use").String(storage::CommercialUseName(t.commercial_use))
          .Key("instructions").Uint(instructions[name])
          .Key("source_dataset").String(t.source_dataset)
          .Key("held_out").Bool(t.held_out)
          .Key("modality").String(storage::ModalityName(t.modality))
          .Key("instances").Uint(task_instances[name])
          .Key("instructions_by_lang").BeginObject();
      for (const auto& [l, n] : by_lang[name]) w.Key(l).Uint(n);
      w.EndObject().EndObject();
    }
    w.EndArray().EndObject();
    std::cout << w.str() << std::endl;
    return kExitOk;
  }
  std::cout << absl::StrFormat("store %s: %d instances, %d unique images, %d tasks, %d groups\n",
                               db, c.TotalInstances(), c.unique_images, c.tasks.size(), c.counts.size());
  std::cout << "fingerprint " << c.fingerprint.Hex() << "\n\n";
  std::cout << absl::StrFormat("%-28s %-12s %-8s %10s\n", "TASK", "SPLIT", "LANG", "INSTANCES");
  for (const auto& [g, n] : c.counts) {
    if (n == 0) continue;
    std::cout << absl::StrFormat("%-28s %-12s %-8s %10d\n", g.task, g.split, g.lang, n);
  }
  std::cout << "\n" << absl::StrFormat("%-28s %-15s %-25s %-10s %-9s %-6s %s\n", "TASK", "CATEGORY",
                                       "LICENSE", "COMMERCIAL", "HELD-OUT", "INSTR", "SOURCE");
  for (const auto& [name, t] : c.tasks) {
    std::cout << absl::StrFormat("%-28s %-15s %-25s %-10s %-9s %-6d %s\n", name, t.category, t.license,
                                 storage::CommercialUseName(t.commercial_use),
                                 t.held_out ? "yes" : "no", instructions[name], t.source_dataset);
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------

int VerifyCommand(int argc, char** argv) {
  std::string db;
  bool json = false;
  int64_t max_problems = 100;
  FlagSet flags("m3serve-admin verify --db DIR [--json]",
                "Check a store: every instance's images exist, ordinals are dense and match the\n"
                "catalog, no image is orphaned, every image's bytes hash to its key. Prints the\n"
                "store's content digest (equal digests = equal content).");
  flags.String("db", &db, "store directory", "DIR");
  flags.Bool("json", &json, "machine-readable output");
  flags.Int("max-problems", &max_problems, "list at most this many problems");
  flags.set_epilog("exit status:\n  0  consistent\n  3  problems found (listed)\n  1  the store cannot be read");
  std::vector<std::string> args;
  int code;
  if (!ParseOrExit(flags, argc, argv, &args, &code)) return code;
  if (db.empty()) return Usage("verify", "--db is required");
  auto store = OpenReadOnly(db);
  if (!store.ok()) return Fatal("verify", store.status());
  auto report = storage::VerifyStore(**store, static_cast<size_t>(std::max<int64_t>(1, max_problems)));
  if (!report.ok()) return Fatal("verify", report.status());
  const auto& r = *report;
  if (json) {
    JsonWriter w(2);
    w.BeginObject().Key("ok").Bool(r.ok()).Key("digest").String(r.digest.Hex())
        .Key("instances").Uint(r.instances).Key("groups").Uint(r.groups)
        .Key("images").Uint(r.images).Key("image_refs").Uint(r.image_refs)
        .Key("image_bytes").Uint(r.image_bytes).Key("image_index").String(ImageIndexStateName(r.image_index))
        .Key("problem_count").Uint(r.problem_count)
        .Key("problems").BeginArray();
    for (const auto& p : r.problems) w.String(p);
    w.EndArray().EndObject();
    std::cout << w.str() << std::endl;
  } else {
    for (const auto& p : r.problems) std::cout << "problem: " << p << "\n";
    if (r.problem_count > r.problems.size()) {
      std::cout << "... and " << (r.problem_count - r.problems.size()) << " more problems\n";
    }
    std::cout << absl::StrFormat(
        "%s: %d instances in %d groups, %d images (%.1f MB), %d image references, %d problems\n"
        "digest %s\n",
        r.ok() ? "OK" : "FAILED", r.instances, r.groups, r.images, r.image_bytes / 1e6, r.image_refs,
        r.problem_count, r.digest.Hex());
    if (r.image_index == storage::VerifyReport::ImageIndexState::kAbsent) {
      std::cout << "note: the store has no image index yet (the evaluation guard and attribution need it); "
                   "the next ingest builds it\n";
    }
  }
  return r.ok() ? kExitOk : kExitDataProblems;
}

// ---------------------------------------------------------------------------

int SampleCommand(int argc, char** argv) {
  std::string out, size = "96x72";
  int64_t seed = 1, scale = 1, quality = 90;
  bool bad_lines = false, json = false;
  FlagSet flags("m3serve-admin sample --out DIR [--seed S] [--scale K] [--bad-lines]",
                "Write a synthetic dataset in the real M3IT and M3IT-80 layouts (DIR/M3IT,\n"
                "DIR/M3IT-80) with JPEG and PNG images drawn with OpenCV, and DIR/expected.json\n"
                "with the counts a correct ingest produces. Deterministic for a seed.");
  flags.String("out", &out, "output directory", "DIR");
  flags.Int("seed", &seed, "random seed", "S");
  flags.Int("scale", &scale, "multiply the number of rows", "K");
  flags.String("image-size", &size, "size of the drawn images", "WxH");
  flags.Int("jpeg-quality", &quality, "JPEG quality of the drawn images");
  flags.Bool("bad-lines", &bad_lines, "also write DIR/bad/bad_lines.jsonl with every kind of bad line");
  flags.Bool("json", &json, "print a machine-readable summary");
  std::vector<std::string> args;
  int code;
  if (!ParseOrExit(flags, argc, argv, &args, &code)) return code;
  if (out.empty()) return Usage("sample", "--out is required");
  std::vector<std::string> wh = absl::StrSplit(size, 'x');
  int w = 0, h = 0;
  if (wh.size() != 2 || !absl::SimpleAtoi(wh[0], &w) || !absl::SimpleAtoi(wh[1], &h)) {
    return Usage("sample", "--image-size must look like 640x480");
  }
  ingest::SampleOptions o;
  o.out = out;
  o.seed = static_cast<uint64_t>(seed);
  o.scale = static_cast<int>(scale);
  o.image_width = w;
  o.image_height = h;
  o.jpeg_quality = static_cast<int>(quality);
  o.bad_lines = bad_lines;
  auto r = ingest::WriteSample(o);
  if (!r.ok()) return Fatal("sample", r.status());
  if (json) {
    JsonWriter jw(2);
    jw.BeginObject().Key("out").String(out).Key("instances").Uint(r->expected_instances)
        .Key("unique_images").Uint(r->expected_unique_images).Key("jsonl_bytes").Uint(r->jsonl_bytes)
        .Key("sources").BeginArray();
    for (const auto& s : r->sources) jw.String(s);
    jw.EndArray().EndObject();
    std::cout << jw.str() << std::endl;
  } else {
    std::cout << absl::StrFormat("wrote %s: %.1f MB of JSONL, %d instances expected, %d unique images\n",
                                 out, r->jsonl_bytes / 1e6, r->expected_instances,
                                 r->expected_unique_images);
    for (const auto& s : r->sources) std::cout << "source: " << s << "\n";
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------

int CheckpointCommand(int argc, char** argv) {
  std::string db, out;
  FlagSet flags("m3serve-admin checkpoint --db DIR --out DIR",
                "Write a consistent snapshot of the store at --db to --out (a new directory),\n"
                "using hard links where possible. Servers open the snapshot read-only.");
  flags.String("db", &db, "store directory", "DIR");
  flags.String("out", &out, "snapshot directory (must not exist)", "DIR");
  std::vector<std::string> args;
  int code;
  if (!ParseOrExit(flags, argc, argv, &args, &code)) return code;
  if (db.empty() || out.empty()) return Usage("checkpoint", "--db and --out are required");
  auto store = Store::Open({.path = db, .create_if_missing = false});
  if (!store.ok()) return Fatal("checkpoint", store.status());
  absl::Status s = (*store)->Checkpoint(out);
  if (!s.ok()) return Fatal("checkpoint", s);
  std::cout << "checkpoint written to " << out << "\n";
  return kExitOk;
}

// ---------------------------------------------------------------------------

namespace {

void PrintReport(const storage::PublishReport& r, bool json) {
  if (json) {
    JsonWriter jw;
    jw.BeginObject().Key("version").String(r.version).Key("previous").String(r.previous);
    jw.Key("written").Bool(r.written).Key("removed").BeginArray();
    for (const auto& v : r.removed) jw.String(v);
    jw.EndArray().Key("kept").BeginArray();
    for (const auto& v : r.kept) jw.String(v);
    jw.EndArray().EndObject();
    std::cout << jw.str() << std::endl;
    return;
  }
  std::cout << "current version: " << r.version
            << (r.previous.empty() || r.previous == r.version ? "" : absl::StrCat(" (was ", r.previous, ")")) << "\n";
  for (const auto& v : r.kept) std::cout << "kept: " << v << "\n";
  for (const auto& v : r.removed) std::cout << "removed: " << v << "\n";
}

// The clean-up flags publish and gc share.
struct CleanUpFlags {
  int64_t keep = 1;
  int64_t lease_seconds = 60;
  bool json = false;

  void Register(FlagSet* flags) {
    flags->Int("keep", &keep, "versions kept besides the current and the leased ones");
    flags->Int("lease-seconds", &lease_seconds, "a server's lease not refreshed for this long is dead");
    flags->Bool("json", &json, "machine-readable report");
  }
  // "" when valid, else what is wrong.
  std::string Check() const {
    return keep < 0 || lease_seconds < 1 ? "--keep must be >= 0 and --lease-seconds >= 1" : "";
  }
  storage::PublishOptions Options() const {
    return {.keep = static_cast<int>(keep), .lease_ttl = absl::Seconds(lease_seconds)};
  }
};

}  // namespace

int PublishCommand(int argc, char** argv) {
  std::string db, root;
  CleanUpFlags clean;
  FlagSet flags("m3serve-admin publish --db DIR --root DIR [--keep N] [--json]",
                "Publish the store at --db as a new version under --root: a snapshot is written to\n"
                "ROOT/versions/<dataset version> beside the versions already there, then ROOT/CURRENT_VERSION\n"
                "is switched to it atomically. Servers started with --db ROOT open the current version and\n"
                "keep the one they opened; running servers are never affected. Then versions no one needs\n"
                "are removed: not the current one, not the --keep newest others, not one a running server\n"
                "holds (ROOT/leases/).");
  flags.String("db", &db, "the store to publish (e.g. the ingest's working store)", "DIR");
  flags.String("root", &root, "the publish root servers are pointed at", "DIR");
  clean.Register(&flags);
  std::vector<std::string> args;
  int code;
  if (!ParseOrExit(flags, argc, argv, &args, &code)) return code;
  if (db.empty() || root.empty()) return Usage("publish", "--db and --root are required");
  if (std::string bad = clean.Check(); !bad.empty()) return Usage("publish", bad);
  auto store = Store::Open({.path = db, .create_if_missing = false});
  if (!store.ok()) return Fatal("publish", store.status());
  auto r = storage::Publish(**store, root, clean.Options());
  if (!r.ok()) return Fatal("publish", r.status());
  if (!clean.json) {
    std::cout << (r->written ? "published " : "already published: ") << r->version << " in " << root << "\n";
  }
  PrintReport(*r, clean.json);
  return kExitOk;
}

int GcCommand(int argc, char** argv) {
  std::string root;
  CleanUpFlags clean;
  FlagSet flags("m3serve-admin gc --root DIR [--keep N] [--json]",
                "Remove the versions of a publish root that no one needs (not the current one, not the\n"
                "--keep newest others, not one a running server holds), dead leases, and leftovers of\n"
                "publishes that were killed. publish does this too.");
  flags.String("root", &root, "the publish root", "DIR");
  clean.Register(&flags);
  std::vector<std::string> args;
  int code;
  if (!ParseOrExit(flags, argc, argv, &args, &code)) return code;
  if (root.empty()) return Usage("gc", "--root is required");
  if (std::string bad = clean.Check(); !bad.empty()) return Usage("gc", bad);
  if (!storage::IsPublishRoot(root)) {
    return Fatal("gc", absl::FailedPreconditionError(absl::StrCat(root, " is not a publish root")));
  }
  auto r = storage::CleanUp(root, clean.Options());
  if (!r.ok()) return Fatal("gc", r.status());
  PrintReport(*r, clean.json);
  return kExitOk;
}

int WaitStoreCommand(int argc, char** argv) {
  std::string db;
  int64_t timeout = 0, interval = 2;
  FlagSet flags("m3serve-admin wait-store --db DIR [--timeout SECONDS]",
                "Wait until --db (a store, or a publish root with a current version) opens as a store whose\n"
                "version is the one its pointer names; exit 0 then. A Kubernetes init container runs this so\n"
                "the server starts only once the first store is published (no crash loop).\n"
                "exit 1: --timeout passed, or the data is wrong (a malformed pointer, a version mismatch).");
  flags.String("db", &db, "store directory or publish root", "DIR");
  flags.Int("timeout", &timeout, "give up after this many seconds (0: wait for ever)");
  flags.Int("interval", &interval, "seconds between checks");
  std::vector<std::string> args;
  int code;
  if (!ParseOrExit(flags, argc, argv, &args, &code)) return code;
  if (db.empty()) return Usage("wait-store", "--db is required");
  if (timeout < 0 || interval < 1) return Usage("wait-store", "--timeout must be >= 0 and --interval >= 1");
  const absl::Time start = absl::Now();
  absl::Time last_said = absl::InfinitePast();
  while (true) {
    absl::StatusOr<std::unique_ptr<Store>> store = OpenReadOnly(db);
    if (store.ok()) {
      auto v = storage::StoreVersion(**store);
      std::cout << "store ready: " << db << " (dataset version " << (v.ok() ? *v : "?") << ")" << std::endl;
      return kExitOk;
    }
    // Only "not there yet" is waited out; wrong data is an error at once.
    if (!absl::IsNotFound(store.status())) return Fatal("wait-store", store.status());
    if (timeout > 0 && absl::Now() - start >= absl::Seconds(timeout)) {
      return Fatal("wait-store", absl::DeadlineExceededError(absl::StrCat(
                                     "no store after ", timeout, " s: ", store.status().message())));
    }
    if (absl::Now() - last_said >= absl::Seconds(30)) {
      std::cout << "waiting for a store at " << db << ": " << store.status().message() << std::endl;
      last_said = absl::Now();
    }
    absl::SleepFor(absl::Seconds(interval));
  }
}

}  // namespace m3serve::admin
