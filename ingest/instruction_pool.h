// File: ingest/instruction_pool.h
//
// Instruction pools: the instructions.json / instruction.json of an M3IT task
// folder (a JSON array of strings, or an object with an "instructions" array)
// and M3IT-80's data/instructions/<lang>.jsonl (per line a JSON string, or an
// object with "instruction" / "instructions" / "<task>", optionally limited to
// one task by "task" / "dataset"). Rows without their own instruction are
// served one from the pool, so a pool is all or nothing: any defect makes it
// unusable, and the error names the file and line.
#ifndef M3SERVE_INGEST_INSTRUCTION_POOL_H_
#define M3SERVE_INGEST_INSTRUCTION_POOL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ingest/row_mapper.h"

namespace m3serve::ingest {

// Pool files larger than this are refused.
inline constexpr uint64_t kMaxPoolFileBytes = 64ull << 20;

// The instructions of `path` for `task`: at least one, none empty. On a defect
// returns InvalidArgument (or the read error) whose message starts with
// "<path>:<line>: " or "<path>: ".
absl::StatusOr<std::vector<std::string>> LoadInstructionPool(const std::string& path,
                                                             const std::string& task);

// What the rows of one source file can rely on for their instruction.
struct InstructionSource {
  // A row without its own instruction is served one from this pool.
  bool pool_usable = false;
  // Why there is no usable pool (when !pool_usable): names the file or folder.
  std::string problem;
  // Template variables the pool's instructions use ("HYPO" for "[HYPO]").
  std::vector<std::string> placeholders;
};

// Template variables a row may fill (DraftInstance::template_vars) and the
// server substitutes into the instruction it serves.
inline constexpr const char* kTemplateVariables[] = {"HYPO"};

// The template variables some instruction of `pool` uses.
std::vector<std::string> PlaceholdersIn(const std::vector<std::string>& pool);

// The one rule for instructions: every instance is served a non-empty
// instruction with every template variable substituted. InvalidArgument with
// the reject reason otherwise.
absl::Status CheckInstruction(const DraftInstance& d, const InstructionSource& source);

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_INSTRUCTION_POOL_H_
