// A run folder, kept safe: a finished or running run is never overwritten, and a checkpoint's model and
// trainer state always come from the same step.
//
// Layout of <out>:
//   run.lock                      pid of the run using the folder (flock'ed while it runs)
//   metrics.jsonl
//   checkpoints/<name>-s<step>/   model.safetensors + state.safetensors, written under a .tmp name first
//   <name> -> checkpoints/...     one symlink per checkpoint (best, last, step_N): switching it is one
//                                 rename, the commit point of both files at once
//   <name>.safetensors -> <name>/model.safetensors, <name>.state.safetensors -> <name>/state.safetensors
// Every link is relative, so a run folder can be moved or copied as a whole.
#pragma once
#include <functional>
#include <string>

namespace tv {

struct RunDirOptions {
  bool resume = false;     // continue the run the folder holds
  bool overwrite = false;  // move the run the folder holds aside (into <out>/previous-<time>/) first
  bool quiet = false;
  std::string what = "run";  // how messages name the run ("pretrain", "align", ...)
};

// True when the folder holds (part of) a run: metrics.jsonl, checkpoints/, a checkpoint link or file.
bool holds_run(const std::string& dir);

class RunDir {
 public:
  // Creates the folder; refuses one holding a run unless resume or overwrite; takes the lock (refusing a
  // folder another live process holds, taking over a dead one's lock with a message); removes what an
  // interrupted commit left behind (.tmp files and folders, checkpoint folders no link names).
  RunDir(const std::string& dir, const RunDirOptions& o);
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;

  const std::string& path() const { return dir_; }
  // Writes checkpoint `name` of `step`: `write(folder, model_path, state_path)` fills a fresh folder,
  // then the link <name> is switched to it and the superseded folder removed.
  void commit_checkpoint(const std::string& name, int64_t step,
                         const std::function<void(const std::string& model_path, const std::string& state_path)>& write);
  // Where <name>'s files are, through the links ("" when the checkpoint does not exist).
  std::string model_path(const std::string& name) const;
  std::string state_path(const std::string& name) const;

 private:
  void lock(const RunDirOptions& o);
  void release_lock();
  void clean_up(bool quiet);
  std::string dir_;
  int lock_fd_ = -1;
};

// Replaces the folder `dir` with `fresh` (a complete folder next to it) only now that it is complete:
// the old folder is moved to <dir>.old-<time> first and removed only after the swap. Used by commands that
// write a folder of outputs (tokenize) so that a failure leaves the old folder as it was.
void swap_in_folder(const std::string& fresh, const std::string& dir);

}  // namespace tv
