// Integration tests of `m3serve-admin`: sample -> ingest -> stats / verify,
// idempotence, SIGKILL + resume, bad input, file-level failures. Real
// processes and a real RocksDB store in a temporary directory.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <set>
#include <thread>

#include <simdjson.h>

#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#include "tests/process.h"

namespace m3serve::tests {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Admin() { return Bin("m3serve-admin"); }

simdjson::dom::element ParseJson(simdjson::dom::parser& p, const std::string& text) {
  simdjson::dom::element e;
  auto err = p.parse(text).get(e);
  EXPECT_FALSE(err) << "not JSON: " << text.substr(0, 500);
  return e;
}

std::string Digest(const std::string& db) {
  CommandResult r = RunCommand({Admin(), "verify", "--db", db, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  simdjson::dom::parser p;
  std::string_view d, index;
  simdjson::dom::element report = ParseJson(p, r.out);
  EXPECT_FALSE(report["digest"].get_string().get(d));
  // Every finished ingest leaves the image index of its data.
  EXPECT_FALSE(report["image_index"].get_string().get(index));
  EXPECT_EQ(index, "current") << db;
  return std::string(d);
}

class IngestIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScopedTempDir("ingest");
    CommandResult r = RunCommand({Admin(), "sample", "--out", *dir_ / "sample", "--bad-lines", "--seed", "7"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string Sample(const std::string& sub) { return *dir_ / ("sample/" + sub); }
  static std::string Db(const std::string& name) { return *dir_ / name; }
  static CommandResult IngestSample(const std::string& db, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {Admin(), "ingest", "--db", db, "--progress", "none",
                                     Sample("M3IT"), Sample("M3IT-80")};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCommand(args);
  }
  static ScopedTempDir* dir_;
};
ScopedTempDir* IngestIntegrationTest::dir_ = nullptr;

TEST_F(IngestIntegrationTest, StatsMatchTheGeneratorsExpectations) {
  const std::string db = Db("stats");
  CommandResult ing = IngestSample(db);
  ASSERT_EQ(ing.exit_code, 0) << ing.out << ing.err;
  CommandResult st = RunCommand({Admin(), "stats", "--db", db, "--json"});
  ASSERT_EQ(st.exit_code, 0) << st.err;

  simdjson::dom::parser pe, ps;
  auto expected = ParseJson(pe, ReadFile(Sample("expected.json")));
  auto stats = ParseJson(ps, st.out);
  EXPECT_EQ(uint64_t(stats["instances"]), uint64_t(expected["instances"]));
  EXPECT_EQ(uint64_t(stats["unique_images"]), uint64_t(expected["unique_images"]));
  std::map<std::string, uint64_t> want, got;
  for (auto g : expected["groups"].get_array()) {
    want[std::string(std::string_view(g["task"])) + "/" + std::string(std::string_view(g["split"])) +
         "/" + std::string(std::string_view(g["lang"]))] = uint64_t(g["instances"]);
  }
  for (auto g : stats["groups"].get_array()) {
    got[std::string(std::string_view(g["task"])) + "/" + std::string(std::string_view(g["split"])) +
        "/" + std::string(std::string_view(g["lang"]))] = uint64_t(g["instances"]);
  }
  EXPECT_EQ(got, want);
  // Every known layout variant produced its group.
  for (const char* g : {"okvqa/train/en", "gqa/validation/en", "shapes/train/en",
                        "shapes-rephrased/train/en", "snli-ve/train/en", "winoground/test/en",
                        "coco-cn/train/zh", "msrvtt/train/en", "vist/test/en", "vqa-v2/validation/fr",
                        "vqa-v2/train/sw", "vqa-v2/train/zh"}) {
    EXPECT_TRUE(got.count(g)) << g;
  }
  // Task metadata comes from the data file.
  std::map<std::string, std::string> license, commercial;
  std::map<std::string, uint64_t> instructions;
  for (auto t : stats["tasks"].get_array()) {
    std::string name = std::string(std::string_view(t["name"]));
    license[name] = std::string(std::string_view(t["license"]));
    commercial[name] = std::string(std::string_view(t["commercial_use"]));
    instructions[name] = uint64_t(t["instructions"]);
  }
  EXPECT_EQ(license["vqa-v2"], "CC-BY-4.0");  // the SPDX id of the paper's "CC-BY 4.0"
  EXPECT_EQ(commercial["coco-cn"], "no");
  EXPECT_EQ(instructions["coco"], 3u);
  EXPECT_EQ(instructions["gqa"], 1u);        // singular instruction.json
  EXPECT_EQ(instructions["winoground"], 2u);  // pretty-printed instructions.json
  EXPECT_EQ(instructions["vqa-v2"], 2u + 2u + 2u + 1u);  // en + fr + zh + sw pools
  EXPECT_THAT(ing.out, Not(HasSubstr("instructions.json")));

  CommandResult v = RunCommand({Admin(), "verify", "--db", db});
  EXPECT_EQ(v.exit_code, 0) << v.out;
  EXPECT_THAT(v.out, HasSubstr("OK:"));
}

TEST_F(IngestIntegrationTest, InstancesCarryTheMappedContent) {
  const std::string db = Db("content");
  ASSERT_EQ(IngestSample(db).exit_code, 0);
  auto store = storage::Store::Open({.path = db, .read_only = true});
  ASSERT_TRUE(store.ok()) << store.status();
  // vqa-v2 row 1 has an unusable paraphrase: outputs fall back to the original answer.
  auto vqa = (*store)->GetInstance({"vqa-v2", "train", "en"}, 1);
  ASSERT_TRUE(vqa.ok());
  EXPECT_EQ(vqa->outputs, "The answer is 2.");
  EXPECT_EQ(vqa->source.file, "data/vqa/vqav2/train.jsonl");
  EXPECT_EQ(vqa->source.line, 2u);
  // coco: one instance per caption, same image, target index recorded.
  auto c0 = (*store)->GetInstance({"coco", "train", "en"}, 0);
  auto c1 = (*store)->GetInstance({"coco", "train", "en"}, 1);
  ASSERT_TRUE(c0.ok() && c1.ok());
  EXPECT_EQ(c0->images, c1->images);
  EXPECT_EQ(c1->source.target, 1u);
  EXPECT_NE(c0->outputs, c1->outputs);
  // vist keeps five images in order; msrvtt keeps six frames.
  EXPECT_EQ((*store)->GetInstance({"vist", "train", "en"}, 0)->images.size(), 5u);
  EXPECT_EQ((*store)->GetInstance({"msrvtt", "train", "en"}, 0)->images.size(), 6u);
  // M3IT-80 rows take their text from the translation and images from the English row.
  auto fr = (*store)->GetInstance({"vqa-v2", "train", "fr"}, 2);
  ASSERT_TRUE(fr.ok());
  EXPECT_EQ(fr->outputs, "[fr] red");
  EXPECT_EQ(fr->images.size(), 1u);
  auto bytes = (*store)->GetImage(fr->images[0]);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(ContentHash(*bytes), fr->images[0]);
  EXPECT_EQ((*store)->GetInstance({"vqa-v2", "train", "fr"}, 1)->instruction, "");  // pool applies
  // snli-ve keeps the hypothesis for [HYPO]; rephrased rows use meta.*.
  auto snli = (*store)->GetInstance({"snli-ve", "train", "en"}, 0);
  ASSERT_EQ(snli->template_vars.size(), 1u);
  EXPECT_EQ(snli->template_vars[0].first, "HYPO");
  EXPECT_EQ(snli->outputs, "yes");
  EXPECT_EQ((*store)->GetInstance({"shapes-rephrased", "train", "en"}, 0)->instruction,
            "Rephrased: look at the shapes and answer.");
  auto cat = (*store)->ReadCatalog();
  ASSERT_TRUE(cat.ok());
  EXPECT_EQ(cat->pools.at({"vqa-v2", "zh"}).size(), 2u);
  EXPECT_EQ(cat->tasks.at("msrvtt").modality, storage::Modality::kVideo);
}

TEST_F(IngestIntegrationTest, ReingestAddsNothing) {
  const std::string db = Db("reingest");
  ASSERT_EQ(IngestSample(db).exit_code, 0);
  const std::string before = Digest(db);
  CommandResult again = IngestSample(db, {"--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  simdjson::dom::parser p;
  auto report = ParseJson(p, again.out);
  EXPECT_EQ(uint64_t(report["totals"]["instances"]), 0u);
  for (auto f : report["files"].get_array()) {
    EXPECT_EQ(std::string_view(f["status"]), "already ingested");
  }
  EXPECT_EQ(Digest(db), before);
}

TEST_F(IngestIntegrationTest, KilledIngestResumesToTheSameStore) {
  // A bigger tree so the ingest runs long enough to be killed part-way, with
  // a task of bad lines so reject records are written throughout.
  const std::string big = *dir_ / "big";
  ASSERT_EQ(RunCommand({Admin(), "sample", "--out", big, "--scale", "12", "--image-size", "200x150",
                        "--bad-lines"}).exit_code, 0);
  const fs::path bad = fs::path(big) / "M3IT" / "data" / "vqa" / "badlines";
  fs::create_directories(bad);
  fs::copy_file(fs::path(big) / "bad" / "bad_lines.jsonl", bad / "train.jsonl");
  { std::ofstream(bad / "instructions.json") << "[\"Answer.\"]"; }
  auto ingest_args = [&](const std::string& db) {
    return std::vector<std::string>{Admin(), "ingest", "--db", db, "--progress", "none",
                                    "--threads", "1", "--commit-bytes", "65536",
                                    "--image-check", "decode", big + "/M3IT", big + "/M3IT-80"};
  };
  const std::string clean_db = Db("clean");
  // Kill points are spread over the clean run's time: the shorter of two
  // clean runs (a loaded machine slows one of them), made shorter again below
  // whenever a run ends before its kill point.
  double clean_ms = 0;
  for (int run = 0; run < 2; ++run) {
    fs::remove_all(clean_db);
    auto t0 = std::chrono::steady_clock::now();
    CommandResult clean = RunCommand(ingest_args(clean_db));
    ASSERT_EQ(clean.exit_code, 3) << clean.out << clean.err;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    clean_ms = run == 0 ? ms : std::min(clean_ms, ms);
  }
  const std::string want = Digest(clean_db);
  const std::string want_rejects = ReadFile(clean_db + "/rejects.jsonl");
  ASSERT_FALSE(want_rejects.empty());

  // 27 kill points spread over the run: wherever it dies, the re-run ends
  // with the clean store and the clean rejects file (no record lost or twice).
  constexpr int kKills = 27;
  int killed = 0;
  for (int i = 0; i < kKills; ++i) {
    const double frac = (i + 0.5) / kKills;
    const std::string db = Db("killed_" + std::to_string(i));
    {
      Child child(ingest_args(db), db + ".log");
      std::this_thread::sleep_for(std::chrono::microseconds(int64_t(clean_ms * frac * 1000)));
      if (!child.Exited()) {
        child.Kill(SIGKILL);
        CommandResult r = child.Wait();
        if (r.signal == SIGKILL) ++killed;
      } else {
        clean_ms *= 0.85;  // it ran faster than the base: later points come earlier
      }
    }
    CommandResult resumed = RunCommand(ingest_args(db));
    // 3 when the re-run itself rejected lines, 0 when the killed run had
    // already committed all of them.
    ASSERT_TRUE(resumed.exit_code == 3 || resumed.exit_code == 0) << resumed.out << resumed.err;
    EXPECT_EQ(Digest(db), want) << "after a kill at " << frac << " of the run";
    EXPECT_EQ(ReadFile(db + "/rejects.jsonl"), want_rejects) << "after a kill at " << frac << " of the run";
    fs::remove_all(db);
  }
  // The test only proves something if many runs really died part-way.
  EXPECT_GE(killed, kKills / 3) << "clean ingest took " << clean_ms << " ms; too fast to interrupt";
}

TEST_F(IngestIntegrationTest, VerifyDetectsARemovedImage) {
  const std::string db = Db("verify");
  ASSERT_EQ(IngestSample(db).exit_code, 0);
  {
    auto store = storage::Store::Open({.path = db});
    ASSERT_TRUE(store.ok());
    auto x = (*store)->GetInstance({"gqa", "train", "en"}, 0);
    ASSERT_TRUE(x.ok());
    ASSERT_TRUE((*store)->DeleteImage(x->images[0]).ok());
  }
  CommandResult v = RunCommand({Admin(), "verify", "--db", db});
  EXPECT_EQ(v.exit_code, 3);
  EXPECT_THAT(v.out, HasSubstr("instance gqa/train/en/0 references missing image"));
  EXPECT_THAT(v.out, HasSubstr("FAILED"));
}

TEST_F(IngestIntegrationTest, EveryBadLineIsRejectedWithItsReason) {
  const std::string db = Db("bad");
  const std::string rejects = *dir_ / "bad_rejects.jsonl";
  CommandResult r = RunCommand({Admin(), "ingest", "--db", db, "--progress", "none", "--task", "bad-lines",
                         "--split", "train", "--lang", "en", "--rejects", rejects, "--json",
                         Sample("bad/bad_lines.jsonl")});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  simdjson::dom::parser pe, pr, pl;
  auto expected = ParseJson(pe, ReadFile(Sample("bad/expected_rejects.json")));
  auto report = ParseJson(pr, r.out);
  EXPECT_EQ(uint64_t(report["totals"]["rows"]), uint64_t(expected["valid_rows"]));
  EXPECT_EQ(uint64_t(report["totals"]["empty_lines"]), uint64_t(expected["empty_lines"]));
  EXPECT_EQ(uint64_t(report["totals"]["lines"]), uint64_t(expected["lines"]));
  std::map<uint64_t, std::string> got;
  std::istringstream lines(ReadFile(rejects));
  for (std::string line; std::getline(lines, line);) {
    auto rec = ParseJson(pl, line);
    got[uint64_t(rec["line"])] = std::string(std::string_view(rec["reason"]));
    EXPECT_EQ(std::string_view(rec["task"]), "bad-lines");
  }
  size_t n = 0;
  for (auto e : expected["rejects"].get_array()) {
    uint64_t line = uint64_t(e["line"]);
    std::string reason = std::string(std::string_view(e["reason"]));
    ASSERT_TRUE(got.count(line)) << "line " << line << " (" << reason << ") was not rejected";
    EXPECT_THAT(got[line], HasSubstr(reason)) << "line " << line;
    ++n;
  }
  EXPECT_EQ(got.size(), n) << "a valid line was rejected";
  EXPECT_GE(n, 15u);
  // Every valid line made it into the store.
  auto store = storage::Store::Open({.path = db, .read_only = true});
  ASSERT_TRUE(store.ok());
  const storage::GroupKey bad_group{"bad-lines", "train", "en"};
  EXPECT_EQ((*store)->ReadCatalog()->counts[bad_group], uint64_t(expected["valid_rows"]));
  // Re-running rejects nothing new: the rejects file is not appended to twice.
  CommandResult again = RunCommand({Admin(), "ingest", "--db", db, "--progress", "none", "--task", "bad-lines",
                             "--split", "train", "--lang", "en", "--rejects", rejects,
                             Sample("bad/bad_lines.jsonl")});
  EXPECT_EQ(again.exit_code, 0);
  std::istringstream again_lines(ReadFile(rejects));
  size_t count = 0;
  for (std::string line; std::getline(again_lines, line);) ++count;
  EXPECT_EQ(count, n);
}

TEST_F(IngestIntegrationTest, FileLevelProblemsAreRejectedAndTheRestIngested) {
  ScopedTempDir tree("filelevel");
  const fs::path data = tree.path() / "data" / "vqa" / "gqa";
  fs::create_directories(data);
  fs::copy_file(Sample("M3IT/data/vqa/gqa/train.jsonl"), data / "train.jsonl");
  fs::copy_file(Sample("M3IT/data/vqa/gqa/instruction.json"), data / "instruction.json");
  { std::ofstream(data / "test.jsonl"); }  // zero bytes
  fs::create_directories(data / "validation.jsonl");  // a directory where a file is expected
  fs::create_directories(tree.path() / "data" / "vqa" / "docvqa");
  std::ofstream(tree.path() / "data/vqa/docvqa/train.jsonl")
      << "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n";
  const std::string db = Db("filelevel");
  CommandResult r = RunCommand({Admin(), "ingest", "--db", db, "--progress", "none", tree.path().string()});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  std::string rejects = ReadFile(db + "/rejects.jsonl");
  EXPECT_THAT(rejects, HasSubstr("file is empty (0 bytes)"));
  EXPECT_THAT(rejects, HasSubstr("is a directory"));
  EXPECT_THAT(rejects, HasSubstr("Git LFS pointer"));
  auto store = storage::Store::Open({.path = db, .read_only = true});
  ASSERT_TRUE(store.ok());
  const storage::GroupKey gqa{"gqa", "train", "en"};
  EXPECT_EQ((*store)->ReadCatalog()->counts[gqa], 6u);
}

TEST_F(IngestIntegrationTest, A200MegabyteLineIsRejectedAndTheRestKept) {
  // Generated here, never committed: a valid line, a 200 MB line that is not
  // valid JSON, a valid line.
  const std::string path = *dir_ / "huge_line.jsonl";
  {
    std::string good = ReadFile(Sample("bad/bad_lines.jsonl"));
    good = good.substr(good.rfind('\n') + 1);  // the last line is valid
    std::ofstream f(path, std::ios::binary);
    f << good << "\n{\"instruction\": \"";
    std::string block(1 << 20, 'A');
    for (int i = 0; i < 200; ++i) f << block;
    f << "\n" << good << "\n";
  }
  for (const char* limit : {"1073741824", "67108864"}) {  // parsed and refused; skipped unbuffered
    const std::string db = Db(std::string("huge_") + limit);
    CommandResult r = RunCommand({Admin(), "ingest", "--db", db, "--progress", "none", "--task", "huge",
                                  "--split", "train", "--lang", "en", "--max-line-bytes", limit, "--json", path});
    EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
    simdjson::dom::parser p;
    auto report = ParseJson(p, r.out);
    EXPECT_EQ(uint64_t(report["totals"]["rows"]), 2u);
    EXPECT_EQ(uint64_t(report["totals"]["rejected"]), 1u);
    std::string rejects = ReadFile(db + "/rejects.jsonl");
    EXPECT_THAT(rejects, HasSubstr("\"line\":2"));
    EXPECT_THAT(rejects, std::string(limit) == "67108864" ? HasSubstr("above --max-line-bytes")
                                                          : HasSubstr("invalid JSON"));
  }
}

TEST_F(IngestIntegrationTest, UnreadableFileIsRejectedWithTheReason) {
  // Permissions only bite a non-root user: run the ingest as `nobody`.
  if (getuid() != 0 || !fs::exists("/usr/bin/setpriv")) {
    GTEST_SKIP() << "SKIPPED: needs root and setpriv to run the ingest as another user";
  }
  CommandResult probe = RunCommand({"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                     Admin(), "--help"});
  if (probe.exit_code != 0) {
    GTEST_SKIP() << "SKIPPED: user nobody cannot run " << Admin() << " here (directory permissions)";
  }
  ScopedTempDir tree("perm");
  const fs::path gqa = tree.path() / "data" / "vqa" / "gqa";
  fs::create_directories(gqa);
  fs::copy_file(Sample("M3IT/data/vqa/gqa/train.jsonl"), gqa / "train.jsonl");
  fs::copy_file(Sample("M3IT/data/vqa/gqa/validation.jsonl"), gqa / "validation.jsonl");
  fs::copy_file(Sample("M3IT/data/vqa/gqa/instruction.json"), gqa / "instruction.json");
  fs::permissions(gqa / "validation.jsonl", fs::perms::none);
  // What the ingest reads besides the source, in a place `nobody` can read
  // (the clone may sit in a private directory such as /root).
  const fs::path metadata = tree.path() / "m3it_tasks.json";
  fs::copy_file(fs::path(SourceDir()) / "data" / "m3it_tasks.json", metadata);
  fs::permissions(metadata, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  fs::permissions(tree.path(), fs::perms::all);
  const std::string db = (tree.path() / "store").string();
  CommandResult r = RunCommand({"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", Admin(),
                                "ingest", "--db", db, "--progress", "none", "--task-metadata", metadata.string(),
                                tree.path().string()});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  const std::string rejects = ReadFile(db + "/rejects.jsonl");
  EXPECT_THAT(rejects, HasSubstr("validation.jsonl"));
  EXPECT_THAT(rejects, HasSubstr("Permission denied"));
  EXPECT_THAT(r.out, HasSubstr("gqa/train/en"));
  auto store = storage::Store::Open({.path = db, .read_only = true});
  ASSERT_TRUE(store.ok()) << store.status();
  const storage::GroupKey train{"gqa", "train", "en"};
  EXPECT_EQ((*store)->ReadCatalog()->counts[train], 6u);  // the readable file is in
}

TEST_F(IngestIntegrationTest, UsageAndFatalErrors) {
  CommandResult no_db = RunCommand({Admin(), "ingest", Sample("M3IT")});
  EXPECT_EQ(no_db.exit_code, 2);
  EXPECT_THAT(no_db.err, HasSubstr("--db is required"));
  CommandResult bad_flag = RunCommand({Admin(), "stats", "--db", "x", "--bogus"});
  EXPECT_EQ(bad_flag.exit_code, 2);
  EXPECT_THAT(bad_flag.err, HasSubstr("unknown flag '--bogus'"));
  CommandResult missing = RunCommand({Admin(), "ingest", "--db", Db("fatal"), *dir_ / "does-not-exist"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("does-not-exist does not exist"));
  CommandResult no_store = RunCommand({Admin(), "stats", "--db", *dir_ / "no-store"});
  EXPECT_EQ(no_store.exit_code, 1);
  EXPECT_THAT(no_store.err, HasSubstr("no m3serve store"));
  CommandResult help = RunCommand({Admin(), "ingest", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("exit status"));
}

}  // namespace
}  // namespace m3serve::tests
