// m3serve-admin: build and inspect m3serve stores.
//
//   m3serve-admin ingest --db DIR [options] SOURCE...
//   m3serve-admin stats --db DIR [--json]
//   m3serve-admin verify --db DIR [--json]
//   m3serve-admin sample --out DIR [--seed S] [--scale K] [--bad-lines]
//   m3serve-admin checkpoint --db DIR --out DIR
//   m3serve-admin publish --db DIR --root DIR [--keep N]
//   m3serve-admin gc --root DIR [--keep N]
//   m3serve-admin wait-store --db DIR [--timeout SECONDS]
#include <malloc.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "admin/commands.h"

namespace {

constexpr char kUsage[] =
    "usage: m3serve-admin COMMAND [flags]\n"
    "\n"
    "Build and inspect m3serve stores (M3IT / M3IT-80 in RocksDB).\n"
    "\n"
    "commands:\n"
    "  ingest      read M3IT, M3IT-80 or canonical JSONL files into a store\n"
    "  stats       print the catalog: counts per task/split/language, licenses\n"
    "  verify      check a store's integrity and print its content digest\n"
    "  sample      write a synthetic dataset in the real M3IT / M3IT-80 layouts\n"
    "  checkpoint  write a consistent snapshot of a store for serving\n"
    "  publish     publish a store as a new version under a publish root (servers never lose theirs)\n"
    "  gc          remove the versions of a publish root that no running server holds\n"
    "  wait-store  wait until a store (or a publish root's current version) can be opened\n"
    "\n"
    "Run `m3serve-admin COMMAND --help` for the flags of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  // Large buffers (lines, batches, decoded images) are allocated and freed all
  // the time: keep them in the heap instead of fresh mmaps, whose page faults
  // cost more than the copies.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  // A file-size limit (RLIMIT_FSIZE) must surface as a write error with a
  // message, not kill the process.
  signal(SIGXFSZ, SIG_IGN);
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "ingest") return m3serve::admin::IngestCommand(argc, argv);
  if (cmd == "stats") return m3serve::admin::StatsCommand(argc, argv);
  if (cmd == "verify") return m3serve::admin::VerifyCommand(argc, argv);
  if (cmd == "sample") return m3serve::admin::SampleCommand(argc, argv);
  if (cmd == "checkpoint") return m3serve::admin::CheckpointCommand(argc, argv);
  if (cmd == "publish") return m3serve::admin::PublishCommand(argc, argv);
  if (cmd == "gc") return m3serve::admin::GcCommand(argc, argv);
  if (cmd == "wait-store") return m3serve::admin::WaitStoreCommand(argc, argv);
  std::fprintf(stderr, "m3serve-admin: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
