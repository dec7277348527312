#include "ingest/sample.h"

#include <filesystem>
#include <fstream>
#include <functional>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/base64.h"
#include "common/hash.h"
#include "common/json_writer.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "ingest/image_codecs.h"

namespace m3serve::ingest {
namespace {

namespace fs = std::filesystem;
using storage::GroupKey;

const char* const kWords[] = {"a",     "small", "red",    "dog",   "sits",  "on",    "the",
                              "green", "grass", "near",   "two",   "people", "with", "bicycle",
                              "under", "blue",  "sky",    "while", "cat",   "looks", "at",
                              "tall",  "tree",  "beside", "river", "city",  "street", "at night"};
const char* const kZhWords[] = {"一只", "小狗", "坐在", "草地", "上", "两个", "人", "骑着",
                                "自行车", "蓝天", "下", "城市", "街道", "猫", "看着", "河边"};

struct Img {
  std::string b64;
  Hash128 hash;
};

class Generator {
 public:
  explicit Generator(const SampleOptions& o) : o_(o), rng_(o.seed) {}

  absl::StatusOr<SampleResult> Run();

 private:
  // --- content -----------------------------------------------------------
  Img MakeImage(uint64_t id, bool png, int w, int h, int frame = -1) {
    cv::RNG r(o_.seed * 1000003ull + id * 7919ull + 17);
    cv::Mat m(h, w, CV_8UC3);
    cv::Vec3b c0(r.uniform(0, 256), r.uniform(0, 256), r.uniform(0, 256));
    cv::Vec3b c1(r.uniform(0, 256), r.uniform(0, 256), r.uniform(0, 256));
    for (int y = 0; y < h; ++y) {
      cv::Vec3b* row = m.ptr<cv::Vec3b>(y);
      for (int x = 0; x < w; ++x) {
        double t = 0.5 * (double(x) / w + double(y) / h);
        for (int c = 0; c < 3; ++c) row[x][c] = cv::saturate_cast<uchar>(c0[c] * (1 - t) + c1[c] * t);
      }
    }
    int shapes = 6 + r.uniform(0, 6);
    for (int k = 0; k < shapes; ++k) {
      cv::Scalar color(r.uniform(0, 256), r.uniform(0, 256), r.uniform(0, 256));
      cv::Point p(r.uniform(0, w), r.uniform(0, h));
      int size = r.uniform(2, std::max(3, std::min(w, h) / 3));
      switch (k % 3) {
        case 0: cv::circle(m, p, size, color, r.uniform(-1, 4), cv::LINE_AA); break;
        case 1: cv::rectangle(m, p, p + cv::Point(size, size / 2 + 1), color, r.uniform(-1, 4)); break;
        default: cv::line(m, p, cv::Point(r.uniform(0, w), r.uniform(0, h)), color, r.uniform(1, 4), cv::LINE_AA);
      }
    }
    if (frame >= 0) {  // a moving object across video frames
      cv::circle(m, cv::Point((frame * 9) % w, h / 2), std::max(2, h / 6), cv::Scalar(255, 255, 255), -1);
    }
    cv::putText(m, absl::StrCat(id), cv::Point(2, h - 4), cv::FONT_HERSHEY_SIMPLEX,
                std::max(0.3, h / 200.0), cv::Scalar(0, 0, 0), 1);
    cv::Mat noise(h, w, CV_16SC3), wide;
    r.fill(noise, cv::RNG::NORMAL, 0, 10);
    m.convertTo(wide, CV_16SC3);
    wide += noise;
    wide.convertTo(m, CV_8UC3);
    // Run() loaded the codecs first, so this does not fail for want of them;
    // OpenCV refusing an 8-bit BGR image would be a bug, never an empty image.
    absl::StatusOr<std::vector<uchar>> buf =
        png ? EncodeImage(".png", m, {cv::IMWRITE_PNG_COMPRESSION, 3})
            : EncodeImage(".jpg", m, {cv::IMWRITE_JPEG_QUALITY, o_.jpeg_quality});
    M3_CHECK(buf.ok()) << buf.status();
    std::string bytes(buf->begin(), buf->end());
    return {Base64Encode(bytes), ContentHash(bytes)};
  }

  std::vector<Img> Pool(uint64_t base, int n, bool png, int w, int h) {
    std::vector<Img> out;
    for (int i = 0; i < n; ++i) out.push_back(MakeImage(base + i, png, w, h));
    return out;
  }

  std::string Sentence(uint64_t id, int words, bool zh = false) {
    cv::RNG r(o_.seed * 31 + id);
    std::string s;
    for (int i = 0; i < words; ++i) {
      if (zh) {
        absl::StrAppend(&s, kZhWords[r.uniform(0, int(std::size(kZhWords)))]);
      } else {
        absl::StrAppend(&s, i ? " " : "", kWords[r.uniform(0, int(std::size(kWords)))]);
      }
    }
    return zh ? s + "。" : s + ".";
  }

  // --- bookkeeping -------------------------------------------------------
  void Expect(const std::string& task, const std::string& split, const std::string& lang,
              uint64_t instances, std::initializer_list<const Img*> images) {
    result_.expected_counts[{task, split, lang}] += instances;
    result_.expected_instances += instances;
    for (const Img* i : images) referenced_.insert(i->hash);
  }
  void ExpectImages(const std::vector<const Img*>& images) {
    for (const Img* i : images) referenced_.insert(i->hash);
  }

  absl::Status WriteLines(const fs::path& path, const std::vector<std::string>& lines,
                          bool trailing_newline = true) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    for (size_t i = 0; i < lines.size(); ++i) {
      f << lines[i];
      if (i + 1 < lines.size() || trailing_newline) f << '\n';
      result_.jsonl_bytes += lines[i].size() + 1;
    }
    f.close();
    if (!f) return absl::UnavailableError(absl::StrCat("cannot write ", path.string()));
    return absl::OkStatus();
  }

  absl::Status WriteText(const fs::path& path, const std::string& text) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) return absl::UnavailableError(absl::StrCat("cannot write ", path.string()));
    return absl::OkStatus();
  }

  // Build a JSON object line with the given writer callback.
  static std::string Row(const std::function<void(JsonWriter&)>& fill) {
    JsonWriter w;
    w.BeginObject();
    fill(w);
    w.EndObject();
    return w.Release();
  }

  absl::Status WriteM3it(const fs::path& root);
  absl::Status WriteM3it80(const fs::path& root);
  absl::Status WriteBadLines(const fs::path& dir);
  absl::Status WriteExpected(const fs::path& path);

  int Rows(int base) const { return base * o_.scale; }

  SampleOptions o_;
  cv::RNG rng_;
  SampleResult result_;
  absl::flat_hash_set<Hash128> referenced_;
  std::vector<Img> coco_pool_;
};

absl::Status Generator::WriteM3it(const fs::path& root) {
  const fs::path data = root / "data";
  const int W = o_.image_width, H = o_.image_height;
  coco_pool_ = Pool(1000, Rows(12), false, W, H);
  const auto& pool = coco_pool_;
  auto img_of = [&](int i) -> const Img& { return pool[i % pool.size()]; };

  // coco: one instance per meta.targets caption.
  {
    fs::path dir = data / "captioning" / "coco";
    M3SERVE_RETURN_IF_ERROR(WriteText(dir / "instructions.json",
        "[\n  \"Write a short caption for the image.\",\n  \"Describe the image in one sentence.\",\n"
        "  \"What is shown in this picture?\"\n]\n"));
    M3SERVE_RETURN_IF_ERROR(WriteText(dir / "README.md", "# coco\nSynthetic sample.\n"));
    M3SERVE_RETURN_IF_ERROR(WriteText(dir / "create_dataset.py", "print('not a row file')\n"));
    int offset = 0;
    for (auto [file, split, n] : {std::tuple{"train.jsonl", "train", Rows(8)},
                                  std::tuple{"val.jsonl", "validation", Rows(3)},
                                  std::tuple{"test.jsonl", "test", Rows(3)}}) {
      std::vector<std::string> lines;
      for (int i = 0; i < n; ++i) {
        const Img& img = img_of(offset + i);
        int targets = 2 + (i % 4);
        lines.push_back(Row([&](JsonWriter& w) {
          w.Key("image").String(img.b64).Key("meta").BeginObject().Key("targets").BeginArray();
          for (int t = 0; t < targets; ++t) w.String(Sentence(offset * 100 + i * 10 + t, 6));
          w.EndArray().Key("image_id").Int(offset + i).EndObject();
        }));
        Expect("coco", split, "en", targets, {&img});
      }
      offset += n;
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / file, lines));
    }
  }
  // vqa-v2: answer fallback when the paraphrase is unusable.
  {
    fs::path dir = data / "vqa" / "vqav2";
    M3SERVE_RETURN_IF_ERROR(WriteText(dir / "instructions.json",
        "[\"Answer the question about the image.\", \"Look at the image and answer.\"]"));
    for (auto [file, split, n] : {std::tuple{"train.jsonl", "train", Rows(10)},
                                  std::tuple{"val.jsonl", "validation", Rows(4)}}) {
      std::vector<std::string> lines;
      for (int i = 0; i < n; ++i) {
        const Img& img = img_of(i * 7);
        std::string para = i % 5 == 1 ? "Sorry, the image descriptions do not say."
                           : i % 7 == 3 ? "This question is not answerable."
                                        : "There are " + std::to_string(i % 4 + 1) + " dogs.";
        lines.push_back(Row([&](JsonWriter& w) {
          w.Key("question").String(absl::StrCat("How many dogs are in image ", i, "?"))
              .Key("img_str").String(img.b64)
              .Key("original_answer").String(std::to_string(i % 4 + 1))
              .Key("paraphrased_answer").String(para);
        }));
        Expect("vqa-v2", split, "en", 1, {&img});
      }
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / file, lines));
    }
  }
  // okvqa: the _v2 files supersede train.jsonl / val.jsonl.
  {
    fs::path dir = data / "vqa" / "okvqa";
    M3SERVE_RETURN_IF_ERROR(WriteText(dir / "instructions.json", "[\"Use world knowledge to answer.\"]"));
    std::vector<Img> stale = Pool(9000, 2, false, W, H);  // only in superseded files
    for (auto [file, n] : {std::pair{"train.jsonl", 3}, std::pair{"val.jsonl", 2}}) {
      std::vector<std::string> lines;
      for (int i = 0; i < n; ++i) {
        lines.push_back(Row([&](JsonWriter& w) {
          w.Key("question").String("stale question").Key("image_str").String(stale[i % 2].b64)
              .Key("answer").String("stale");
        }));
      }
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / file, lines));
    }
    for (auto [file, split, n] : {std::tuple{"train_v2.jsonl", "train", Rows(6)},
                                  std::tuple{"val_v2.jsonl", "validation", Rows(3)}}) {
      std::vector<std::string> lines;
      for (int i = 0; i < n; ++i) {
        const Img& img = img_of(i * 3 + 1);
        lines.push_back(Row([&](JsonWriter& w) {
          w.Key("question").String(absl::StrCat("What sport is played here (", i, ")?"))
              .Key("image_str").String(img.b64)
              .Key("answer").String("tennis")
              .Key("paraphrased_answer").String(i % 4 == 2 ? "Sorry, I don't know." : "They are playing tennis.");
        }));
        Expect("okvqa", split, "en", 1, {&img});
      }
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / file, lines));
    }
  }
  // gqa: PNG images, singular instruction.json, validation.jsonl.
  {
    fs::path dir = data / "vqa" / "gqa";
    M3SERVE_RETURN_IF_ERROR(WriteText(dir / "instruction.json", "[\"Answer with a short phrase.\"]"));
    std::vector<Img> png = Pool(2000, Rows(5), true, W, H);
    for (auto [file, split, n] : {std::tuple{"train.jsonl", "train", Rows(6)},
                                  std::tuple{"validation.jsonl", "validation", Rows(3)}}) {
      std::vector<std::string> lines;
      for (int i = 0; i < n; ++i) {
        const Img& img = png[(i + (split[0] == 'v' ? 3 : 0)) % png.size()];
        lines.push_back(Row([&](JsonWriter& w) {
          w.Key("question").String(absl::StrCat("Is the object left of the tree? (", i, ")"))
              .Key("image_str").String(img.b64).Key("answer").String(i % 2 ? "yes" : "no");
        }));
        Expect("gqa", split, "en", 1, {&img});
      }
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / file, lines));
    }
  }
  // vist: five images per row, outputs = joined sentences.
  {
    fs::path dir = data / "generation" / "vist";
    M3SERVE_RETURN_IF_ERROR(WriteText(dir / "instructions.json", "[\"Tell a story about these photos.\"]"));
    uint64_t next = 3000;
    for (auto [file, split, n] : {std::tuple{"train.jsonl", "train", Rows(4)},
                                  std::tuple{"val.jsonl", "validation", Rows(2)},
                                  std::tuple{"test.jsonl", "test", Rows(2)}}) {
      std::vector<std::string> lines;
      for (int i = 0; i < n; ++i) {
        std::vector<Img> imgs = Pool(next, 5, false, W, H);
        next += 5;
        std::vector<const Img*> refs;
        lines.push_back(Row([&](JsonWriter& w) {
          w.Key("images").BeginArray();
          for (const auto& im : imgs) {
            w.String(im.b64);
            refs.push_back(&im);
          }
          w.EndArray().Key("sentences").BeginArray();
          for (int s = 0; s < 5; ++s) w.String(Sentence(next * 10 + s, 7));
          w.EndArray();
        }));
        Expect("vist", split, "en", 1, {});
        ExpectImages(refs);
      }
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / file, lines));
    }
  }
  // msrvtt: a video task, rows carry frame lists in video_str.
  {
    fs::path dir = data / "captioning" / "msrvtt";
    M3SERVE_RETURN_IF_ERROR(WriteText(dir / "instructions.json", "[\"Describe what happens in the video.\"]"));
    uint64_t video = 0;
    for (auto [file, split, n] : {std::tuple{"train.jsonl", "train", Rows(3)},
                                  std::tuple{"val.jsonl", "validation", Rows(2)},
                                  std::tuple{"test.jsonl", "test", Rows(2)}}) {
      std::vector<std::string> lines;
      for (int i = 0; i < n; ++i, ++video) {
        std::vector<Img> frames;
        for (int f = 0; f < 6; ++f) frames.push_back(MakeImage(5000 + video, false, W / 2, H / 2, f));
        std::vector<const Img*> refs;
        lines.push_back(Row([&](JsonWriter& w) {
          w.Key("video_str").BeginArray();
          for (const auto& fr : frames) {
            w.String(fr.b64);
            refs.push_back(&fr);
          }
          w.EndArray().Key("caption").String(Sentence(video + 777, 8));
        }));
        Expect("msrvtt", split, "en", 1, {});
        ExpectImages(refs);
      }
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / file, lines));
    }
  }
  // coco-cn: a Chinese task (language zh).
  {
    fs::path dir = data / "captioning" / "coco-cn";
    M3SERVE_RETURN_IF_ERROR(WriteText(dir / "instructions.json", "[\"请用一句话描述这张图片。\", \"这张图片里有什么？\"]"));
    for (auto [file, split, n] : {std::tuple{"train.jsonl", "train", Rows(4)},
                                  std::tuple{"val.jsonl", "validation", Rows(2)},
                                  std::tuple{"test.jsonl", "test", Rows(2)}}) {
      std::vector<std::string> lines;
      for (int i = 0; i < n; ++i) {
        const Img& img = img_of(i + 5);
        lines.push_back(Row([&](JsonWriter& w) {
          w.Key("image").String(img.b64).Key("caption").String(Sentence(i + 4242, 5, true));
        }));
        Expect("coco-cn", split, "zh", 1, {&img});
      }
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / file, lines));
    }
  }
  // winoground: test only, input/output keys, a pretty-printed instructions.json.
  {
    fs::path dir = data / "classification" / "winoground";
    M3SERVE_RETURN_IF_ERROR(WriteText(
        dir / "instructions.json",
        "[\n  \"Does the caption describe the image? Answer yes or no.\",\n"
        "  \"Decide whether the caption matches the picture.\"\n]\n"));
    std::vector<Img> imgs = Pool(7000, Rows(4), false, W, H);
    std::vector<std::string> lines;
    for (int i = 0; i < Rows(4); ++i) {
      lines.push_back(Row([&](JsonWriter& w) {
        w.Key("input").String(absl::StrCat("Does the caption match? caption ", i))
            .Key("output").String(i % 2 ? "yes" : "no").Key("image_str").String(imgs[i].b64);
      }));
      Expect("winoground", "test", "en", 1, {&imgs[i]});
    }
    M3SERVE_RETURN_IF_ERROR(WriteLines(dir / "winoground_test.jsonl", lines));
  }
  // shapes: train.large.jsonl, plus dated rephrased files (shapes-rephrased).
  {
    fs::path dir = data / "vqa" / "shapes";
    M3SERVE_RETURN_IF_ERROR(WriteText(dir / "instructions.json", "[\"Answer the question about the shapes.\"]"));
    std::vector<Img> imgs = Pool(8000, 6, true, 48, 48);
    for (auto [file, split, n] : {std::tuple{"train.large.jsonl", "train", Rows(5)},
                                  std::tuple{"val.jsonl", "validation", Rows(2)},
                                  std::tuple{"test.jsonl", "test", Rows(2)}}) {
      std::vector<std::string> lines;
      for (int i = 0; i < n; ++i) {
        const Img& img = imgs[i % imgs.size()];
        lines.push_back(Row([&](JsonWriter& w) {
          w.Key("question").String("is a red shape above a circle?").Key("image_str").String(img.b64)
              .Key("answer").String(i % 3 ? "yes" : "no");
        }));
        Expect("shapes", split, "en", 1, {&img});
      }
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / file, lines));
    }
    for (auto [file, split, n] : {std::tuple{"train_2023-10-08.jsonl", "train", Rows(3)},
                                  std::tuple{"test_2023-10-08.jsonl", "test", Rows(2)}}) {
      std::vector<std::string> lines;
      for (int i = 0; i < n; ++i) {
        const Img& img = imgs[(i + 2) % imgs.size()];
        lines.push_back(Row([&](JsonWriter& w) {
          w.Key("meta").BeginObject()
              .Key("instruction").String("Rephrased: look at the shapes and answer.")
              .Key("inputs").String(absl::StrCat("Is there a blue square? (", i, ")"))
              .Key("image_base64_str").BeginArray().String(img.b64).EndArray()
              .EndObject()
              .Key("answer").String(i % 2 ? "Yes, there is." : "No, there is not.");
        }));
        Expect("shapes-rephrased", split, "en", 1, {&img});
      }
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / file, lines));
    }
  }
  // snli-ve: task-prefixed names, [HYPO] instructions, labels mapped to yes/no/maybe.
  {
    fs::path dir = data / "classification" / "snli-ve";
    M3SERVE_RETURN_IF_ERROR(WriteText(dir / "instructions.json",
        "[\"Does the image entail the hypothesis \\\"[HYPO]\\\"? Answer yes, no or maybe.\"]"));
    const char* labels[] = {"entailment", "contradiction", "neutral"};
    for (auto [file, split, n] : {std::tuple{"esnlive_train.jsonl", "train", Rows(4)},
                                  std::tuple{"esnlive_val.jsonl", "validation", Rows(2)},
                                  std::tuple{"esnlive_test.jsonl", "test", Rows(2)}}) {
      std::vector<std::string> lines;
      for (int i = 0; i < n; ++i) {
        const Img& img = img_of(i + 2);
        lines.push_back(Row([&](JsonWriter& w) {
          w.Key("hypothesis").String(Sentence(i + 99, 5)).Key("image_base64_str").String(img.b64)
              .Key("label").String(labels[i % 3]).Key("rationale").String("the picture does not say");
        }));
        Expect("snli-ve", split, "en", 1, {&img});
      }
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / file, lines));
    }
  }
  return absl::OkStatus();
}

absl::Status Generator::WriteM3it80(const fs::path& root) {
  const fs::path data = root / "data";
  const auto& pool = coco_pool_;
  M3SERVE_RETURN_IF_ERROR(WriteLines(data / "instructions" / "fr.jsonl",
      {"\"Répondez à la question sur l'image.\"", "\"Regardez l'image et répondez.\""}));
  M3SERVE_RETURN_IF_ERROR(WriteLines(data / "instructions" / "zh.jsonl",
      {R"({"instruction": "请回答关于图片的问题。"})", R"({"instruction": "看图回答问题。"})"}));
  M3SERVE_RETURN_IF_ERROR(WriteLines(data / "instructions" / "sw.jsonl",
      {"\"Jibu swali kuhusu picha.\""}));
  const fs::path dir = data / "vqa-v2";
  for (auto [raw, split, n] : {std::tuple{"train_500.jsonl", "train", Rows(4)},
                               std::tuple{"val_500.jsonl", "validation", Rows(3)}}) {
    std::vector<std::string> lines;
    std::vector<const Img*> imgs;
    for (int i = 0; i < n; ++i) {
      const Img& img = pool[(i * 5 + 3) % pool.size()];
      imgs.push_back(&img);
      lines.push_back(Row([&](JsonWriter& w) {
        w.Key("question").String(absl::StrCat("What color is the bus? (", i, ")"))
            .Key("img_str").String(img.b64).Key("original_answer").String("red")
            .Key("paraphrased_answer").String("The bus is red.");
      }));
    }
    M3SERVE_RETURN_IF_ERROR(WriteLines(dir / raw, lines));
    for (const char* lang : {"fr", "sw", "zh"}) {
      std::vector<std::string> tl;
      for (int i = 0; i < n; ++i) {
        tl.push_back(Row([&](JsonWriter& w) {
          w.Key("instruction").String(i % 2 ? "" : absl::StrCat("[", lang, "] Answer the question."))
              .Key("input").String(absl::StrCat("[", lang, "] What color is the bus? (", i, ")"))
              .Key("output").String(absl::StrCat("[", lang, "] red"));
        }));
      }
      M3SERVE_RETURN_IF_ERROR(WriteLines(dir / absl::StrCat("vqa-v2_", split, "_", lang, ".jsonl"), tl));
      Expect("vqa-v2", split, lang, n, {});
      ExpectImages(imgs);
    }
  }
  return absl::OkStatus();
}

absl::Status Generator::WriteBadLines(const fs::path& dir) {
  const Img good = MakeImage(424242, false, 32, 24);
  std::string jpeg;
  M3SERVE_RETURN_IF_ERROR(Base64Decode(good.b64, &jpeg));
  auto valid = [&](const std::string& tag) {
    return Row([&](JsonWriter& w) {
      w.Key("instruction").String("Describe.").Key("inputs").String(tag)
          .Key("image_base64_str").BeginArray().String(good.b64).EndArray()
          .Key("outputs").String("ok");
    });
  };
  auto with_image = [&](const std::function<void(JsonWriter&)>& image) {
    return Row([&](JsonWriter& w) {
      w.Key("instruction").String("x").Key("inputs").String("");
      image(w);
      w.Key("outputs").String("y");
    });
  };
  std::string bomb("\x89PNG\r\n\x1a\n\x00\x00\x00\x0DIHDR\x00\x01\x86\xA0\x00\x01\x86\xA0\x08\x02\x00\x00\x00"
                   "\x00\x00\x00\x00\x00\x00\x00\x00IEND\xAE\x42\x60\x82", 45);
  std::string deep(2000, '[');
  deep += std::string(2000, ']');
  std::string b64_ws = good.b64.substr(0, 8) + "\n" + good.b64.substr(8);

  struct Case {
    std::string line;
    std::string reason;  // "" = valid, "EMPTY" = skipped
  };
  std::vector<Case> cases = {
      {"\xEF\xBB\xBF" + valid("bom"), ""},
      {valid("crlf") + "\r", ""},
      {"", "EMPTY"},
      {R"({"instruction": "x", "inputs": ")", "invalid JSON"},
      {"[1, 2, 3]", "line is a JSON array, not an object"},
      {"{\"instruction\": \"bad \xC3\x28 utf8\", \"outputs\": \"y\"}", "invalid UTF-8"},
      {valid("plain"), ""},
      {Row([&](JsonWriter& w) {
         w.Key("image_base64_str").BeginArray().String(good.b64).EndArray().Key("outputs").Int(42);
       }), "field 'outputs': expected a string, got number"},
      {Row([&](JsonWriter& w) { w.Key("instruction").String("x").Key("outputs").String("y"); }),
       "missing image"},
      {with_image([](JsonWriter& w) { w.Key("image_base64_str").BeginArray().String("!!!notbase64").EndArray(); }),
       "invalid base64"},
      {with_image([](JsonWriter& w) {
         w.Key("image_base64_str").BeginArray().String(Base64Encode("hello, this is text")).EndArray();
       }), "not a decodable image"},
      {Row([&](JsonWriter& w) { w.Key("image_base64_str").BeginArray().String(good.b64).EndArray(); }),
       "missing output"},
      {with_image([&](JsonWriter& w) {
         w.Key("image_base64_str").BeginArray().String(Base64Encode(jpeg.substr(0, jpeg.size() / 2))).EndArray();
       }), "truncated"},
      {with_image([](JsonWriter& w) { w.Key("image_base64_str").BeginArray().Int(123).EndArray(); }),
       "field 'image_base64_str[0]': expected a base64 string, got number"},
      {deep, "nested deeper"},
      {with_image([&](JsonWriter& w) { w.Key("image_base64_str").String(b64_ws); }), "whitespace"},
      {with_image([&](JsonWriter& w) { w.Key("image_base64_str").String(Base64Encode(bomb)); }),
       "above the limit"},
      {Row([&](JsonWriter& w) {
         w.Key("instruction").Int(5).Key("image_base64_str").String(good.b64).Key("outputs").String("y");
       }), "field 'instruction': expected a string, got number"},
      {"   \t ", "EMPTY"},
      {"42", "line is a JSON number, not an object"},
      {with_image([](JsonWriter& w) { w.Key("image_base64_str").BeginArray().EndArray(); }),
       "is an empty list"},
      {valid("last line without newline"), ""},
  };
  std::vector<std::string> lines;
  JsonWriter exp(2);
  exp.BeginObject().Key("task").String("bad-lines").Key("split").String("train").Key("lang").String("en");
  exp.Key("rejects").BeginArray();
  uint64_t valid_rows = 0, empty = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    lines.push_back(cases[i].line);
    if (cases[i].reason.empty()) {
      ++valid_rows;
    } else if (cases[i].reason == "EMPTY") {
      ++empty;
    } else {
      exp.BeginObject().Key("line").Uint(i + 1).Key("reason").String(cases[i].reason).EndObject();
    }
  }
  exp.EndArray().Key("valid_rows").Uint(valid_rows).Key("empty_lines").Uint(empty)
      .Key("lines").Uint(cases.size()).EndObject();
  M3SERVE_RETURN_IF_ERROR(WriteLines(dir / "bad_lines.jsonl", lines, /*trailing_newline=*/false));
  return WriteText(dir / "expected_rejects.json", exp.str() + "\n");
}

absl::Status Generator::WriteExpected(const fs::path& path) {
  result_.expected_unique_images = referenced_.size();
  JsonWriter w(2);
  w.BeginObject()
      .Key("instances").Uint(result_.expected_instances)
      .Key("unique_images").Uint(result_.expected_unique_images)
      .Key("groups").BeginArray();
  for (const auto& [g, n] : result_.expected_counts) {
    w.BeginObject().Key("task").String(g.task).Key("split").String(g.split).Key("lang").String(g.lang)
        .Key("instances").Uint(n).EndObject();
  }
  w.EndArray().Key("sources").BeginArray();
  for (const auto& s : result_.sources) w.String(s);
  w.EndArray().EndObject();
  return WriteText(path, w.str() + "\n");
}

absl::StatusOr<SampleResult> Generator::Run() {
  if (o_.out.empty()) return absl::InvalidArgumentError("--out is required");
  if (o_.scale < 1) return absl::InvalidArgumentError("--scale must be at least 1");
  if (o_.image_width < 16 || o_.image_height < 16) {
    return absl::InvalidArgumentError("--image-size must be at least 16x16");
  }
  M3SERVE_RETURN_IF_ERROR(LoadImageCodecs().status());
  const fs::path out(o_.out);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", o_.out, ": ", ec.message()));
  M3SERVE_RETURN_IF_ERROR(WriteM3it(out / "M3IT"));
  M3SERVE_RETURN_IF_ERROR(WriteM3it80(out / "M3IT-80"));
  if (o_.bad_lines) M3SERVE_RETURN_IF_ERROR(WriteBadLines(out / "bad"));
  result_.sources = {(out / "M3IT").string(), (out / "M3IT-80").string()};
  M3SERVE_RETURN_IF_ERROR(WriteExpected(out / "expected.json"));
  return result_;
}

}  // namespace

absl::StatusOr<SampleResult> WriteSample(const SampleOptions& options) {
  Generator g(options);
  return g.Run();
}

}  // namespace m3serve::ingest
