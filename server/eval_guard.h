// File: server/eval_guard.h
//
// The evaluation-leakage guard. An evaluation set is the instances of some
// splits (default: validation and test) of some tasks (default: every task),
// in every language. An instance shares an image with it when one of its
// images (by content hash) is an image of an instance of the set; the guard
// leaves every such instance out of a selection (the evaluation instances
// themselves included). Computed from the store's image index
// (storage/types.h, ImageIndex) once per evaluation set: one pass over the
// image references, then selections only look runs up.
#ifndef M3SERVE_SERVER_EVAL_GUARD_H_
#define M3SERVE_SERVER_EVAL_GUARD_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "storage/types.h"

namespace m3serve::server {

// The splits an evaluation set has when a request names none.
inline const std::vector<std::string>& DefaultEvalSplits() {
  static const std::vector<std::string> splits = {"test", "validation"};
  return splits;
}

// A validated evaluation set: sorted, distinct names.
struct EvalSet {
  std::vector<std::string> splits;
  std::vector<std::string> tasks;  // empty: every task
  // "test+validation of every task", "validation of coco, vqa-v2": for
  // messages, and part of a guarded selection's identity.
  std::string Describe() const;
  bool Contains(const storage::GroupKey& g) const;
};

// The ordinals of one group the guard leaves out, as sorted disjoint runs.
class GroupExclusion {
 public:
  // Append the run [begin, end) (after every run so far; begin < end).
  void AddRun(uint64_t begin, uint64_t end);
  uint64_t excluded() const { return excluded_before_.back(); }
  // The ordinal of the i-th instance the guard keeps.
  uint64_t KeptOrdinal(uint64_t i) const;
  bool Excludes(uint64_t ordinal) const;
  size_t runs() const { return begin_.size(); }

 private:
  std::vector<uint64_t> begin_, end_;
  std::vector<uint64_t> kept_before_;          // kept instances before run k
  std::vector<uint64_t> excluded_before_{0};   // excluded instances before run k (size runs + 1)
};

// What the guard leaves out for one evaluation set, per group of the store.
struct EvalExclusion {
  EvalSet set;
  // Groups that lose instances (others lose none).
  std::map<storage::GroupKey, std::shared_ptr<const GroupExclusion>> groups;
  uint64_t excluded = 0;
  // Images of the evaluation set.
  uint64_t eval_images = 0;

  // nullptr when `g` loses nothing.
  std::shared_ptr<const GroupExclusion> Find(const storage::GroupKey& g) const;
};

// The exclusion of `set` over `index`: time and memory linear in the index.
std::shared_ptr<const EvalExclusion> ComputeEvalExclusion(const storage::ImageIndex& index, EvalSet set);

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_EVAL_GUARD_H_
