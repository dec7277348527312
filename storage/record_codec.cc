#include "storage/record_codec.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace m3serve::storage {
namespace {

constexpr uint8_t kVersion = 1;

class Writer {
 public:
  explicit Writer(size_t reserve = 64) { out_.reserve(reserve); out_.push_back(static_cast<char>(kVersion)); }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Str(absl::string_view s) {
    Varint(s.size());
    out_.append(s.data(), s.size());
  }
  void Raw(absl::string_view s) { out_.append(s.data(), s.size()); }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(absl::string_view in, const char* what) : in_(in), what_(what) {}
  bool Start() {
    if (in_.empty() || static_cast<uint8_t>(in_[0]) != kVersion) return Fail("unknown version");
    in_.remove_prefix(1);
    return true;
  }
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) return Fail("truncated varint");
      uint8_t b = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      *v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return Fail("varint too long");
  }
  bool Str(std::string* s) {
    uint64_t n;
    if (!Varint(&n)) return false;
    if (n > in_.size()) return Fail("string runs past the end");
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool Raw(size_t n, absl::string_view* out) {
    if (n > in_.size()) return Fail("record runs past the end");
    *out = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  // Fails with `why` unless `cond` (a decoded field is out of its range).
  bool Check(bool cond, const char* why) { return cond || Fail(why); }
  bool AtEnd() const { return in_.empty(); }
  absl::Status Done() {
    if (!error_.empty()) return absl::DataLossError(absl::StrCat("corrupt ", what_, " record: ", error_));
    if (!in_.empty()) return absl::DataLossError(absl::StrCat("corrupt ", what_, " record: trailing bytes"));
    return absl::OkStatus();
  }

 private:
  bool Fail(const char* why) {
    if (error_.empty()) error_ = why;
    return false;
  }
  absl::string_view in_;
  const char* what_;
  std::string error_;
};

}  // namespace

std::string EncodeInstance(const Instance& x) {
  Writer w(x.instruction.size() + x.inputs.size() + x.outputs.size() + x.meta_json.size() +
           x.source.file.size() + 16 * x.images.size() + 32);
  w.Str(x.instruction);
  w.Str(x.inputs);
  w.Str(x.outputs);
  w.Varint(x.images.size());
  for (const auto& h : x.images) w.Raw(h.Raw());
  w.Str(x.source.file);
  w.Varint(x.source.line);
  w.Varint(x.source.target);
  w.Str(x.meta_json);
  w.Varint(x.template_vars.size());
  for (const auto& [k, v] : x.template_vars) {
    w.Str(k);
    w.Str(v);
  }
  return w.Take();
}

absl::Status DecodeInstance(absl::string_view value, Instance* x) {
  Reader r(value, "instance");
  uint64_t n = 0, target = 0;
  bool ok = r.Start() && r.Str(&x->instruction) && r.Str(&x->inputs) && r.Str(&x->outputs) &&
            r.Varint(&n);
  x->images.clear();
  if (ok && n > value.size() / 16) return absl::DataLossError("corrupt instance record: image count");
  for (uint64_t i = 0; ok && i < n; ++i) {
    absl::string_view raw;
    ok = r.Raw(16, &raw);
    if (ok) x->images.push_back(*Hash128::FromRaw(raw));
  }
  ok = ok && r.Str(&x->source.file) && r.Varint(&x->source.line) && r.Varint(&target) &&
       r.Check(target <= UINT32_MAX, "source target out of range") && r.Str(&x->meta_json) &&
       r.Varint(&n);
  x->source.target = static_cast<uint32_t>(target);
  x->template_vars.clear();
  if (ok && n > value.size()) return absl::DataLossError("corrupt instance record: variable count");
  for (uint64_t i = 0; ok && i < n; ++i) {
    std::string k, v;
    ok = r.Str(&k) && r.Str(&v);
    x->template_vars.emplace_back(std::move(k), std::move(v));
  }
  return r.Done();
}

// The only location kind so far; records without one end after the size.
constexpr uint64_t kLocationPack = 1;

std::string EncodeImageMeta(const ImageMeta& m, const PackLocation* where) {
  Writer w;
  w.Varint(static_cast<uint64_t>(m.format));
  w.Varint(m.width);
  w.Varint(m.height);
  w.Varint(m.size);
  if (where != nullptr) {
    w.Varint(kLocationPack);
    w.Varint(where->pack);
    w.Varint(where->offset);
  }
  return w.Take();
}

absl::Status DecodeImageMeta(absl::string_view value, ImageMeta* m, std::optional<PackLocation>* where) {
  Reader r(value, "image meta");
  uint64_t f = 0, wd = 0, ht = 0;
  if (where != nullptr) where->reset();
  if (r.Start() && r.Varint(&f) && r.Check(f <= static_cast<uint64_t>(ImageFormat::kTiff), "unknown image format") &&
      r.Varint(&wd) && r.Varint(&ht) && r.Check(wd <= UINT32_MAX && ht <= UINT32_MAX, "image size out of range") &&
      r.Varint(&m->size)) {
    m->format = static_cast<ImageFormat>(f);
    m->width = static_cast<uint32_t>(wd);
    m->height = static_cast<uint32_t>(ht);
    uint64_t kind = 0;
    PackLocation loc;
    if (!r.AtEnd() && r.Varint(&kind) && r.Check(kind == kLocationPack, "unknown image location kind") &&
        r.Varint(&loc.pack) && r.Varint(&loc.offset) && where != nullptr) {
      *where = loc;
    }
  }
  return r.Done();
}

std::string EncodeTaskInfo(const TaskInfo& t) {
  Writer w;
  w.Str(t.name);
  w.Str(t.category);
  w.Str(t.source_dataset);
  w.Str(t.license);
  w.Varint(static_cast<uint64_t>(t.commercial_use));
  w.Varint(t.held_out ? 1 : 0);
  w.Varint(static_cast<uint64_t>(t.modality));
  w.Str(t.default_lang);
  w.Str(t.license_text);  // added later: older records end before it
  return w.Take();
}

absl::Status DecodeTaskInfo(absl::string_view value, TaskInfo* t) {
  Reader r(value, "task");
  uint64_t cu = 0, held = 0, mod = 0;
  if (r.Start() && r.Str(&t->name) && r.Str(&t->category) && r.Str(&t->source_dataset) &&
      r.Str(&t->license) && r.Varint(&cu) &&
      r.Check(cu <= static_cast<uint64_t>(CommercialUse::kNo), "unknown commercial-use value") &&
      r.Varint(&held) && r.Check(held <= 1, "held-out flag out of range") && r.Varint(&mod) &&
      r.Check(mod <= static_cast<uint64_t>(Modality::kVideo), "unknown modality") &&
      r.Str(&t->default_lang)) {
    t->commercial_use = static_cast<CommercialUse>(cu);
    t->held_out = held != 0;
    t->modality = static_cast<Modality>(mod);
    if (!r.AtEnd()) r.Str(&t->license_text);
  }
  return r.Done();
}

std::string EncodeStringList(const std::vector<std::string>& list) {
  Writer w;
  w.Varint(list.size());
  for (const auto& s : list) w.Str(s);
  return w.Take();
}

absl::Status DecodeStringList(absl::string_view value, std::vector<std::string>* list) {
  Reader r(value, "string list");
  uint64_t n = 0;
  list->clear();
  if (r.Start() && r.Varint(&n)) {
    if (n > value.size()) return absl::DataLossError("corrupt string list record: count");
    for (uint64_t i = 0; i < n; ++i) {
      std::string s;
      if (!r.Str(&s)) break;
      list->push_back(std::move(s));
    }
  }
  return r.Done();
}

std::string EncodeFileProgress(const FileProgress& p) {
  Writer w;
  w.Str(p.fingerprint);
  w.Varint(p.offset);
  w.Varint(p.line);
  w.Varint(p.complete ? 1 : 0);
  w.Varint(p.ingested_rows);
  w.Varint(p.instances);
  w.Varint(p.rejected);
  // Fields added later follow, so records written before them still decode.
  w.Varint(p.size);
  w.Varint(static_cast<uint64_t>(p.mtime_ns));
  w.Varint(p.inode);
  w.Varint(p.device);
  w.Varint(static_cast<uint64_t>(p.checked_ns));
  w.Raw(p.hash_chain.Raw());
  w.Varint(p.hash_offset);
  w.Raw(p.prefix_hash.Raw());
  w.Varint(p.changed ? 1 : 0);
  if (p.side_known) {
    w.Varint(p.side_files.size());
    for (const SideFileState& f : p.side_files) {
      w.Str(f.role);
      w.Raw(f.identity.Raw());
      w.Varint(f.size);
      w.Varint(static_cast<uint64_t>(f.mtime_ns));
      w.Varint(f.inode);
      w.Varint(f.device);
      w.Varint(static_cast<uint64_t>(f.checked_ns));
    }
  }
  return w.Take();
}

absl::Status DecodeFileProgress(absl::string_view value, FileProgress* p) {
  Reader r(value, "progress");
  uint64_t complete = 0;
  if (r.Start() && r.Str(&p->fingerprint) && r.Varint(&p->offset) && r.Varint(&p->line) &&
      r.Varint(&complete) && r.Check(complete <= 1, "complete flag out of range") &&
      r.Varint(&p->ingested_rows) && r.Varint(&p->instances) &&
      r.Varint(&p->rejected)) {
    p->complete = complete != 0;
    if (!r.AtEnd()) {
      uint64_t mtime = 0, checked = 0, changed = 0;
      absl::string_view chain, prefix;
      if (r.Varint(&p->size) && r.Varint(&mtime) && r.Varint(&p->inode) && r.Varint(&p->device) &&
          r.Varint(&checked) && r.Raw(16, &chain) && r.Varint(&p->hash_offset) &&
          r.Raw(16, &prefix) && r.Varint(&changed) && r.Check(changed <= 1, "changed flag out of range")) {
        p->mtime_ns = static_cast<int64_t>(mtime);
        p->checked_ns = static_cast<int64_t>(checked);
        p->hash_chain = *Hash128::FromRaw(chain);
        p->prefix_hash = *Hash128::FromRaw(prefix);
        p->changed = changed != 0;
        if (!r.AtEnd()) {
          uint64_t n = 0;
          if (r.Varint(&n) && r.Check(n <= value.size(), "side file count")) {
            p->side_known = true;
            p->side_files.resize(n);
            for (SideFileState& f : p->side_files) {
              absl::string_view identity;
              uint64_t fmtime = 0, fchecked = 0;
              if (!(r.Str(&f.role) && r.Raw(16, &identity) && r.Varint(&f.size) && r.Varint(&fmtime) &&
                    r.Varint(&f.inode) && r.Varint(&f.device) && r.Varint(&fchecked))) {
                break;
              }
              f.identity = *Hash128::FromRaw(identity);
              f.mtime_ns = static_cast<int64_t>(fmtime);
              f.checked_ns = static_cast<int64_t>(fchecked);
            }
          }
        }
      }
    }
  }
  return r.Done();
}

std::string EncodeImageRefs(const ImageRefs& g) {
  Writer w(8 + g.offsets.size() + 3 * g.refs.size());
  w.Varint(g.instances());
  for (uint64_t o = 0; o < g.instances(); ++o) {
    w.Varint(g.offsets[o + 1] - g.offsets[o]);
    for (uint32_t i = g.offsets[o]; i < g.offsets[o + 1]; ++i) w.Varint(g.refs[i]);
  }
  return w.Take();
}

absl::Status DecodeImageRefs(absl::string_view value, uint32_t images, ImageRefs* g) {
  Reader r(value, "image index group");
  uint64_t n = 0;
  bool ok = r.Start() && r.Varint(&n) && r.Check(n <= value.size(), "instance count");
  g->offsets.assign(1, 0);
  g->refs.clear();
  if (!ok) return r.Done();
  g->offsets.reserve(n + 1);
  for (uint64_t o = 0; ok && o < n; ++o) {
    uint64_t k = 0;
    ok = r.Varint(&k) && r.Check(k <= value.size(), "image count");
    for (uint64_t i = 0; ok && i < k; ++i) {
      uint64_t id = 0;
      ok = r.Varint(&id) && r.Check(id < images, "image number out of range");
      if (ok) g->refs.push_back(static_cast<uint32_t>(id));
    }
    g->offsets.push_back(static_cast<uint32_t>(g->refs.size()));
  }
  return r.Done();
}

std::string EncodeImageIndexHeader(const ImageIndex& index) {
  Writer w;
  w.Raw(index.basis.Raw());
  w.Varint(index.images);
  w.Varint(index.groups.size());
  return w.Take();
}

absl::Status DecodeImageIndexHeader(absl::string_view value, ImageIndex* index, uint64_t* groups) {
  Reader r(value, "image index header");
  absl::string_view raw;
  uint64_t images = 0;
  bool ok = r.Start() && r.Raw(16, &raw) && r.Varint(&images) && r.Check(images <= UINT32_MAX, "image count") &&
            r.Varint(groups);
  if (ok) {
    index->basis = *Hash128::FromRaw(raw);
    index->images = static_cast<uint32_t>(images);
  }
  return r.Done();
}

}  // namespace m3serve::storage
