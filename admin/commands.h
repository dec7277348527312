// File: admin/commands.h
//
// The subcommands of m3serve-admin. Each takes the whole argv (argv[1] is the
// command name) and returns the process exit status:
//   0  success
//   1  fatal error (bad store, unreadable SOURCE, write failure)
//   2  usage error (unknown flag, missing required flag)
//   3  data problems: ingest rejected some lines (the rest was ingested), or
//      verify found inconsistencies
#ifndef M3SERVE_ADMIN_COMMANDS_H_
#define M3SERVE_ADMIN_COMMANDS_H_

namespace m3serve::admin {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFatal = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitDataProblems = 3;

int IngestCommand(int argc, char** argv);
int StatsCommand(int argc, char** argv);
int VerifyCommand(int argc, char** argv);
int SampleCommand(int argc, char** argv);
int CheckpointCommand(int argc, char** argv);
int PublishCommand(int argc, char** argv);
int GcCommand(int argc, char** argv);
int WaitStoreCommand(int argc, char** argv);

}  // namespace m3serve::admin

#endif  // M3SERVE_ADMIN_COMMANDS_H_
