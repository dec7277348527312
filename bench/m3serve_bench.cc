// m3serve-bench: the C++ side of bench/run. Each subcommand measures one
// thing and prints one JSON object on stdout.
//
//   decode-limit  --db DIR --threads N --width W --height H [--seconds S]
//       The bare OpenCV loop a user writes: cv::imdecode (with the reduced-JPEG
//       flag the target allows), resize to cover W x H, centre crop, BGR->RGB,
//       over the store's images held in memory, N threads: the decode limit.
//       Written here with OpenCV alone, not with the server's decoder.
//   store-read    --db DIR [--seconds S]
//       Read every image's bytes straight from the store in a tight loop.
//   image-write   --db DIR --out DIR [--threads N]
//       The ingest's writes alone: every image of the store (held in memory)
//       written into a new store at --out the way the ingest writes them (N
//       threads, each its own ImageWriter and pack file, a write batch of
//       their records per 4 MiB of bytes), then the store's closing Flush;
//       timed from creating the store to the end of that Flush. The disk floor
//       of an ingest: what it would take if parsing and decoding were free.
//   stream        --target T [--streams K] [--slow F] [--images decoded|encoded]
//                 [--width W --height H] [--seconds S] [--tasks a,b --languages x,y]
//                 [--splits s --exclude-eval-images]
//       K concurrent client streams; a fraction F of them sleep 20 ms per batch,
//       a fraction --stalled read one batch and then never read again.
//       Aggregate images/s, MB/s, batch latency percentiles, time to first batch.
//   first-batch   --target T [--n N] [stream selection and image flags]
//       Time to the first batch of N fresh streams, one after another.
//   random-access --target T [--n N]
//       GetInstances latency for random ids.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <simdjson.h>

#include "absl/strings/str_cat.h"
#include "bench/bench_clock.h"
#include "client/dataset_client.h"
#include "common/base64.h"
#include "common/cli.h"
#include "common/json_writer.h"

#include "ingest/row_mapper.h"
#include "server/image_transform.h"
#include "storage/store.h"

namespace {

using namespace m3serve;  // NOLINT
using bench::Clock;
using bench::CpuSeconds;
using bench::Seconds;


double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

int Usage(const std::string& msg) {
  std::fprintf(stderr, "m3serve-bench: %s\n", msg.c_str());
  return 2;
}

struct LoadedImage {
  std::string bytes;
  storage::ImageMeta meta;
};

// The images the instances reference, one entry per reference, in key order:
// the same multiset of decodes a stream over every instance performs (shared
// images count once per instance, as in the stream).
absl::StatusOr<std::vector<LoadedImage>> LoadImages(const std::string& db) {
  auto store = storage::Store::Open({.path = db, .read_only = true});
  if (!store.ok()) return store.status();
  std::map<Hash128, size_t> index;
  std::vector<LoadedImage> unique;
  std::vector<size_t> refs;
  absl::Status inner;
  absl::Status s = (*store)->ForEachInstance([&](storage::Instance&& x) {
    for (const auto& h : x.images) {
      auto it = index.find(h);
      if (it == index.end()) {
        auto bytes = (*store)->GetImage(h);
        auto meta = (*store)->GetImageMeta(h);
        if (!bytes.ok() || !meta.ok()) {
          inner = bytes.ok() ? meta.status() : bytes.status();
          return false;
        }
        it = index.emplace(h, unique.size()).first;
        unique.push_back({std::move(*bytes), *meta});
      }
      refs.push_back(it->second);
    }
    return true;
  });
  if (!s.ok()) return s;
  if (!inner.ok()) return inner;
  std::vector<LoadedImage> out;
  out.reserve(refs.size());
  for (size_t r : refs) out.push_back(unique[r]);
  return out;
}

// The peer's decode: OpenCV only. Fill: scale to cover the target, crop the
// centre, convert to RGB into `rgb`. False when the bytes do not decode.
bool BareOpenCvFill(const std::string& bytes, const storage::ImageMeta& meta, int width, int height,
                    std::string* rgb) {
  int flags = cv::IMREAD_COLOR;
  if (meta.format == ImageFormat::kJpeg && meta.width && meta.height) {
    const int f = server::ReducedDecodeFactor(meta.width, meta.height,
                                              {uint32_t(width), uint32_t(height), server::ResizeMode::kFill});
    flags = f == 8 ? cv::IMREAD_REDUCED_COLOR_8 : f == 4 ? cv::IMREAD_REDUCED_COLOR_4
            : f == 2 ? cv::IMREAD_REDUCED_COLOR_2 : cv::IMREAD_COLOR;
  }
  cv::Mat bgr = cv::imdecode(cv::Mat(1, int(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())), flags);
  if (bgr.empty()) return false;
  const double src_w = meta.width ? meta.width : bgr.cols, src_h = meta.height ? meta.height : bgr.rows;
  const double scale = std::max(width / src_w, height / src_h);
  const int sw = std::max(1, int(std::lround(src_w * scale))), sh = std::max(1, int(std::lround(src_h * scale)));
  cv::Mat scaled;
  cv::resize(bgr, scaled, cv::Size(sw, sh), 0, 0, sw < bgr.cols ? cv::INTER_AREA : cv::INTER_LINEAR);
  const int cw = std::min(width, scaled.cols), ch = std::min(height, scaled.rows);
  rgb->assign(size_t(width) * height * 3, '\0');
  cv::Mat out(height, width, CV_8UC3, rgb->data());
  cv::cvtColor(scaled(cv::Rect((scaled.cols - cw) / 2, (scaled.rows - ch) / 2, cw, ch)),
               out(cv::Rect((width - cw) / 2, (height - ch) / 2, cw, ch)), cv::COLOR_BGR2RGB);
  return true;
}

int DecodeLimit(int argc, char** argv) {
  std::string db;
  int64_t threads = 2, width = 224, height = 224;
  double seconds = 5;
  FlagSet f("m3serve-bench decode-limit --db DIR", "decode + resize loop over in-memory images");
  f.String("db", &db, "store");
  f.Int("threads", &threads, "threads");
  f.Int("width", &width, "target width");
  f.Int("height", &height, "target height");
  f.Double("seconds", &seconds, "duration");
  std::vector<std::string> args;
  if (!f.Parse(argc, argv, 2, &args).ok() || db.empty()) return Usage("decode-limit: bad flags");
  auto images = LoadImages(db);
  if (!images.ok() || images->empty()) return Usage("decode-limit: cannot load images");
  cv::setNumThreads(1);  // one image per thread, as the server runs it
  std::atomic<uint64_t> done{0};
  std::atomic<bool> stop{false};
  const double cpu0 = CpuSeconds();
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::string rgb;
      for (size_t i = t; !stop.load(std::memory_order_relaxed); i += threads) {
        const auto& img = (*images)[i % images->size()];
        if (BareOpenCvFill(img.bytes, img.meta, int(width), int(height), &rgb)) done++;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  stop = true;
  for (auto& th : pool) th.join();
  const double secs = Seconds(t0, Clock::now());
  JsonWriter w;
  w.BeginObject().Key("images").Uint(done).Key("seconds").Double(secs)
      .Key("images_per_second").Double(done / secs).Key("cpu_seconds").Double(CpuSeconds() - cpu0)
      .Key("threads").Int(threads).EndObject();
  std::cout << w.str() << std::endl;
  return 0;
}

int StoreRead(int argc, char** argv) {
  std::string db;
  double seconds = 3;
  FlagSet f("m3serve-bench store-read --db DIR", "read image bytes from the store in a loop");
  f.String("db", &db, "store");
  f.Double("seconds", &seconds, "duration");
  std::vector<std::string> args;
  if (!f.Parse(argc, argv, 2, &args).ok() || db.empty()) return Usage("store-read: bad flags");
  auto store = storage::Store::Open({.path = db, .read_only = true});
  if (!store.ok()) return Usage(store.status().ToString());
  std::vector<Hash128> hashes;
  (void)(*store)->ForEachImageMeta([&](const Hash128& h, const storage::ImageMeta&) {
    hashes.push_back(h);
    return true;
  });
  uint64_t n = 0, bytes = 0;
  const auto t0 = Clock::now();
  while (Seconds(t0, Clock::now()) < seconds) {
    for (const auto& h : hashes) {
      auto b = (*store)->GetImage(h);
      if (b.ok()) {
        ++n;
        bytes += b->size();
      }
    }
  }
  const double secs = Seconds(t0, Clock::now());
  JsonWriter w;
  w.BeginObject().Key("images").Uint(n).Key("bytes").Uint(bytes).Key("seconds").Double(secs)
      .Key("images_per_second").Double(n / secs).Key("mb_per_second").Double(bytes / 1e6 / secs).EndObject();
  std::cout << w.str() << std::endl;
  return 0;
}

int ImageWrite(int argc, char** argv) {
  std::string db, out;
  int64_t threads = 2;
  FlagSet f("m3serve-bench image-write --db DIR --out DIR", "write the store's images the way the ingest does");
  f.String("db", &db, "store whose images are written");
  f.String("out", &out, "new store (must not exist)");
  f.Int("threads", &threads, "writer threads");
  std::vector<std::string> args;
  if (!f.Parse(argc, argv, 2, &args).ok() || db.empty() || out.empty() || threads < 1) {
    return Usage("image-write: bad flags");
  }
  std::vector<std::pair<Hash128, LoadedImage>> images;
  {
    auto store = storage::Store::Open({.path = db, .read_only = true});
    if (!store.ok()) return Usage(store.status().ToString());
    absl::Status inner;
    absl::Status s = (*store)->ForEachImageMeta([&](const Hash128& h, const storage::ImageMeta& meta) {
      auto bytes = (*store)->GetImage(h);
      if (!bytes.ok()) inner = bytes.status();
      images.push_back({h, {bytes.ok() ? std::move(*bytes) : std::string(), meta}});
      return bytes.ok();
    });
    if (!s.ok() || !inner.ok()) return Usage((s.ok() ? inner : s).ToString());
  }
  uint64_t bytes = 0;
  for (const auto& [h, img] : images) bytes += img.bytes.size();
  const auto t0 = Clock::now();
  const double cpu0 = CpuSeconds();
  auto store = storage::Store::Open({.path = out, .bulk_ingest = true});
  if (!store.ok()) return Usage(store.status().ToString());
  const double create_secs = Seconds(t0, Clock::now());
  std::mutex mu;
  absl::Status failed;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      absl::Status s;
      auto writer = (*store)->NewImageWriter();
      if (!writer.ok()) s = writer.status();
      storage::StoreWriteBatch batch;
      uint64_t batched = 0;
      for (size_t i = t; s.ok() && i < images.size(); i += threads) {
        s = (*writer)->Add(images[i].first, images[i].second.meta, images[i].second.bytes, &batch);
        batched += images[i].second.bytes.size();
        if (s.ok() && batched >= (4u << 20)) {
          s = (*store)->Write(&batch);
          batch = storage::StoreWriteBatch();
          batched = 0;
        }
      }
      if (s.ok() && batch.Count() > 0) s = (*store)->Write(&batch);
      std::lock_guard<std::mutex> lock(mu);
      if (!s.ok() && failed.ok()) failed = s;
    });
  }
  for (auto& th : pool) th.join();
  if (failed.ok()) failed = (*store)->Flush();
  if (!failed.ok()) return Usage(failed.ToString());
  store->reset();
  const double secs = Seconds(t0, Clock::now());
  JsonWriter w;
  w.BeginObject().Key("images").Uint(images.size()).Key("bytes").Uint(bytes).Key("threads").Int(threads)
      .Key("seconds").Double(secs).Key("create_seconds").Double(create_secs)
      .Key("cpu_seconds").Double(CpuSeconds() - cpu0).Key("mb_per_second").Double(bytes / 1e6 / secs).EndObject();
  std::cout << w.str() << std::endl;
  return 0;
}

// Jain's fairness index of per-stream rates: (sum x)^2 / (n sum x^2); 1 is equal shares.
double Jain(const std::vector<double>& x) {
  double sum = 0, sq = 0;
  for (double v : x) sum += v, sq += v * v;
  return x.empty() || sq == 0 ? 1.0 : sum * sum / (static_cast<double>(x.size()) * sq);
}

// What the stream commands ask for: a shuffled selection (its own seed per
// stream, like independent training jobs), images as given.
struct BenchSelection {
  std::vector<std::string> tasks, languages, splits;
  bool exclude_eval_images = false;
  std::string images = "decoded";
  int64_t width = 224, height = 224, batch = 32, epoch_size = 0;

  void Flags(FlagSet& f) {
    f.Int("epoch-size", &epoch_size, "samples per stream (the selection repeats; 0: its size)");
    f.String("images", &images, "decoded | encoded | none");
    f.List("tasks", &tasks, "tasks");
    f.List("languages", &languages, "languages");
    f.List("splits", &splits, "splits");
    f.Bool("exclude-eval-images", &exclude_eval_images, "the evaluation-leakage guard (default evaluation set)");
    f.Int("width", &width, "width");
    f.Int("height", &height, "height");
    f.Int("batch-size", &batch, "batch size");
  }
  v1::StreamRequest Request(uint64_t seed) const {
    v1::StreamRequest req;
    for (const auto& t : tasks) req.mutable_selection()->add_tasks(t);
    for (const auto& l : languages) req.mutable_selection()->add_languages(l);
    for (const auto& x : splits) req.mutable_selection()->add_splits(x);
    req.mutable_selection()->set_exclude_eval_images(exclude_eval_images);
    if (epoch_size > 0) req.mutable_mixture()->set_epoch_size(static_cast<uint64_t>(epoch_size));
    req.set_order(v1::ORDER_SHUFFLED);
    req.set_seed(seed);
    req.set_batch_size(static_cast<uint32_t>(batch));
    if (images == "decoded") {
      req.mutable_images()->set_mode(v1::IMAGE_MODE_DECODED);
      req.mutable_images()->set_width(static_cast<uint32_t>(width));
      req.mutable_images()->set_height(static_cast<uint32_t>(height));
      req.mutable_images()->set_resize(v1::RESIZE_MODE_FILL);
    } else {
      req.mutable_images()->set_mode(images == "none" ? v1::IMAGE_MODE_NONE : v1::IMAGE_MODE_ENCODED);
    }
    return req;
  }
};

// Time to first batch over N fresh streams, one after another (seeds 1..N).
int FirstBatch(int argc, char** argv) {
  std::string target;
  int64_t n = 20;
  BenchSelection sel;
  FlagSet f("m3serve-bench first-batch --target T", "time to first batch of fresh streams");
  f.String("target", &target, "server");
  f.Int("n", &n, "streams");
  sel.Flags(f);
  std::vector<std::string> args;
  if (!f.Parse(argc, argv, 2, &args).ok() || target.empty() || n < 1) return Usage("first-batch: bad flags");
  client::ClientOptions o;
  o.targets = {target};
  auto c = client::DatasetClient::Create(o);
  if (!c.ok()) return Usage(c.status().ToString());
  std::vector<double> ms;
  uint64_t images = 0;
  int errors = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto start = Clock::now();
    auto stream = (*c)->Stream(sel.Request(static_cast<uint64_t>(i) + 1));
    v1::InstanceBatch b;
    auto more = stream->Next(&b);
    if (!more.ok() || !*more) {
      ++errors;
      continue;
    }
    ms.push_back(Seconds(start, Clock::now()) * 1e3);
    for (const auto& x : b.instances()) images += x.images_size();
    stream->Cancel();
  }
  JsonWriter w;
  w.BeginObject().Key("streams").Int(n).Key("first_batch_ms").Double(Percentile(ms, 0.5))
      .Key("first_batch_p90_ms").Double(Percentile(ms, 0.9))
      .Key("images_per_first_batch").Double(ms.empty() ? 0 : static_cast<double>(images) / ms.size())
      .Key("errors").Int(errors).EndObject();
  std::cout << w.str() << std::endl;
  return errors ? 1 : 0;
}

int Stream(int argc, char** argv) {
  std::string target;
  BenchSelection sel;
  int64_t streams = 1;
  double seconds = 10, slow = 0;
  FlagSet f("m3serve-bench stream --target T", "concurrent streams");
  f.String("target", &target, "server");
  sel.Flags(f);
  f.Int("streams", &streams, "concurrent streams");
  f.Double("seconds", &seconds, "duration (0: to the end of the shard)");
  f.Double("slow", &slow, "fraction of streams that sleep 20 ms per batch");
  double stalled = 0;
  f.Double("stalled", &stalled, "fraction of streams that read one batch, then never read again");
  std::vector<std::string> args;
  if (!f.Parse(argc, argv, 2, &args).ok() || target.empty()) return Usage("stream: bad flags");
  client::ClientOptions o;
  o.targets = {target};
  auto c = client::DatasetClient::Create(o);
  if (!c.ok()) return Usage(c.status().ToString());
  std::mutex mu;
  std::vector<double> latencies, first_batch;
  std::vector<double> fast_intervals, fast_rates;  // of streams that read all the time
  std::atomic<uint64_t> images_total{0}, bytes_total{0}, instances_total{0};
  std::atomic<int> errors{0};
  const double cpu0 = CpuSeconds();
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int s = 0; s < streams; ++s) {
    pool.emplace_back([&, s] {
      const int n_stalled = static_cast<int>(stalled * streams + 0.5);
      const bool is_stalled = s < n_stalled;
      const bool is_slow = !is_stalled && s < n_stalled + static_cast<int>(slow * streams + 0.5);
      // Each stream its own shuffle of the whole selection, like independent
      // training jobs (shards of a small sample would restart every few batches).
      const v1::StreamRequest req = sel.Request(static_cast<uint64_t>(s) + 1);
      const int64_t batch = sel.batch;
      std::vector<double> lat, batch_intervals;
      uint64_t in_batch = 0, images_mine = 0;
      auto batch_start = Clock::now();
      auto stream = (*c)->Stream(req);
      v1::InstanceBatch b;
      auto last = Clock::now();
      const auto start = last;
      bool first = true;
      while (seconds <= 0 || Seconds(t0, Clock::now()) < seconds) {
        auto more = stream->Next(&b);
        if (!more.ok()) {
          errors++;
          break;
        }
        if (!*more) {
          if (seconds <= 0) break;
          stream = (*c)->Stream(req);  // loop the shard for timed runs
          continue;
        }
        auto now = Clock::now();
        if (first) {
          std::lock_guard<std::mutex> lock(mu);
          first_batch.push_back(Seconds(start, now));
          first = false;
        }
        lat.push_back(Seconds(last, now));
        // A batch is split into messages under the byte cap: the interval that
        // matters to a training loop is the one between whole batches.
        in_batch += b.instances_size();
        if (in_batch >= static_cast<uint64_t>(batch)) {
          batch_intervals.push_back(Seconds(batch_start, now));
          batch_start = now;
          in_batch = 0;
        }
        uint64_t imgs = 0;
        for (const auto& x : b.instances()) imgs += x.images_size();
        images_total += imgs;
        images_mine += imgs;
        instances_total += b.instances_size();
        bytes_total += b.ByteSizeLong();
        if (is_slow) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (is_stalled) {
          // Hold the stream open without reading until the run ends.
          while (Seconds(t0, Clock::now()) < seconds) std::this_thread::sleep_for(std::chrono::milliseconds(50));
          break;
        }
        last = Clock::now();
      }
      stream->Cancel();
      std::lock_guard<std::mutex> lock(mu);
      latencies.insert(latencies.end(), lat.begin(), lat.end());
      if (!is_stalled && !is_slow) {
        // The first batch includes the stream's start-up; the rest is steady state.
        if (!batch_intervals.empty()) batch_intervals.erase(batch_intervals.begin());
        fast_intervals.insert(fast_intervals.end(), batch_intervals.begin(), batch_intervals.end());
        fast_rates.push_back(static_cast<double>(images_mine) / std::max(1e-9, Seconds(start, Clock::now())));
      }
    });
  }
  for (auto& th : pool) th.join();
  const double secs = Seconds(t0, Clock::now());
  JsonWriter w;
  w.BeginObject().Key("streams").Int(streams).Key("seconds").Double(secs)
      .Key("instances").Uint(instances_total).Key("images").Uint(images_total).Key("bytes").Uint(bytes_total)
      .Key("images_per_second").Double(images_total / secs).Key("instances_per_second").Double(instances_total / secs)
      .Key("mb_per_second").Double(bytes_total / 1e6 / secs)
      .Key("batch_latency_p50_ms").Double(Percentile(latencies, 0.5) * 1e3)
      .Key("batch_latency_p99_ms").Double(Percentile(latencies, 0.99) * 1e3)
      .Key("first_batch_ms").Double(Percentile(first_batch, 0.5) * 1e3)
      .Key("fast_batch_interval_p50_ms").Double(Percentile(fast_intervals, 0.5) * 1e3)
      .Key("fast_batch_interval_p99_ms").Double(Percentile(fast_intervals, 0.99) * 1e3)
      .Key("fast_jain_fairness").Double(Jain(fast_rates)).Key("fast_streams").Int(static_cast<int64_t>(fast_rates.size()))
      .Key("client_cpu_seconds").Double(CpuSeconds() - cpu0).Key("errors").Int(errors).EndObject();
  std::cout << w.str() << std::endl;
  return errors ? 1 : 0;
}

int RandomAccess(int argc, char** argv) {
  std::string target;
  int64_t n = 500;
  FlagSet f("m3serve-bench random-access --target T", "GetInstances latency");
  f.String("target", &target, "server");
  f.Int("n", &n, "calls");
  std::vector<std::string> args;
  if (!f.Parse(argc, argv, 2, &args).ok() || target.empty()) return Usage("random-access: bad flags");
  client::ClientOptions o;
  o.targets = {target};
  auto c = client::DatasetClient::Create(o);
  auto cat = (*c)->GetCatalog();
  if (!cat.ok()) return Usage(cat.status().ToString());
  std::vector<std::string> ids;
  for (const auto& g : cat->counts()) {
    for (uint64_t i = 0; i < g.instances(); ++i) ids.push_back(absl::StrCat(g.task(), "/", g.split(), "/", g.language(), "/", i));
  }
  std::mt19937_64 rng(7);
  std::vector<double> lat;
  for (int64_t i = 0; i < n; ++i) {
    v1::GetInstancesRequest req;
    req.add_ids(ids[rng() % ids.size()]);
    req.mutable_images()->set_mode(v1::IMAGE_MODE_ENCODED);
    const auto t = Clock::now();
    auto r = (*c)->GetInstances(req);
    if (!r.ok()) return Usage(r.status().ToString());
    lat.push_back(Seconds(t, Clock::now()));
  }
  JsonWriter w;
  w.BeginObject().Key("calls").Int(n).Key("p50_ms").Double(Percentile(lat, 0.5) * 1e3)
      .Key("p99_ms").Double(Percentile(lat, 0.99) * 1e3).EndObject();
  std::cout << w.str() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "decode-limit") return DecodeLimit(argc, argv);
  if (cmd == "store-read") return StoreRead(argc, argv);
  if (cmd == "image-write") return ImageWrite(argc, argv);
  if (cmd == "stream") return Stream(argc, argv);
  if (cmd == "first-batch") return FirstBatch(argc, argv);
  if (cmd == "random-access") return RandomAccess(argc, argv);
  std::fprintf(stderr, "usage: m3serve-bench decode-limit|store-read|image-write|stream|first-batch|random-access [flags]\n");
  return 2;
}
