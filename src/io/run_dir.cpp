#include "io/run_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <algorithm>
#include <system_error>
#include <vector>

#include "core/error.h"

namespace tv {
namespace fs = std::filesystem;

namespace {

const char* kLock = "run.lock";
const char* kCheckpoints = "checkpoints";

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// A link in the run folder that names a checkpoint folder ("best" -> "checkpoints/best-s12").
bool is_checkpoint_link(const fs::directory_entry& e) {
  std::error_code ec;
  if (!e.is_symlink(ec)) return false;
  return fs::read_symlink(e.path(), ec).string().rfind(std::string(kCheckpoints) + "/", 0) == 0;
}

bool is_run_entry(const fs::directory_entry& e) {
  const std::string name = e.path().filename().string();
  if (name == "metrics.jsonl" || name == kCheckpoints) return true;
  if (is_checkpoint_link(e)) return true;
  return name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0;
}

std::string timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

// Moves every run entry of `dir` into a new <dir>/previous-<time>[-n]/; returns where.
fs::path move_run_aside(const fs::path& dir) {
  fs::path aside = dir / ("previous-" + timestamp());
  for (int n = 2; fs::exists(aside); ++n) aside = dir / ("previous-" + timestamp() + "-" + std::to_string(n));
  fs::create_directory(aside);
  for (const auto& e : fs::directory_iterator(dir))
    if (is_run_entry(e)) fs::rename(e.path(), aside / e.path().filename());
  fsync_dir(dir);
  return aside;
}

// Points `link` at `target` atomically (symlink under a temporary name, renamed over the link).
void set_link(const fs::path& link, const std::string& target) {
  fs::path tmp = link;
  tmp += ".link.tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  if (::symlink(target.c_str(), tmp.c_str()) != 0)
    fail(tmp.string(), ": cannot create a link (", std::strerror(errno), ")");
  if (std::rename(tmp.c_str(), link.c_str()) != 0) {
    int err = errno;
    fs::remove(tmp, ec);
    fail(link.string(), ": cannot replace (", std::strerror(err), ")");
  }
}

// <name>.safetensors and <name>.state.safetensors, links through <name>, made once. Without
// replace_files a plain file of that name (a run folder of an older layout) is left for later.
void ensure_file_links(const fs::path& dir, const std::string& name, bool replace_files = true) {
  const std::pair<const char*, const char*> files[] = {{".safetensors", "model.safetensors"},
                                                        {".state.safetensors", "state.safetensors"}};
  for (const auto& [suffix, file] : files) {
    fs::path link = dir / (name + suffix);
    std::string target = name + "/" + file;
    std::error_code ec;
    if (fs::is_symlink(link, ec) && fs::read_symlink(link, ec).string() == target) continue;
    if (!replace_files && fs::exists(fs::symlink_status(link, ec))) continue;
    set_link(link, target);  // also replaces a plain file from a run folder of an older layout
  }
}

}  // namespace

bool holds_run(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (is_run_entry(e)) return true;
  return false;
}

RunDir::RunDir(const std::string& dir, const RunDirOptions& o) : dir_(dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) fail(dir, ": --out exists and is not a folder");
  fs::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create the run folder (", ec.message(), ")");
  if (::access(dir.c_str(), W_OK) != 0) fail(dir, ": the run folder is not writable (", std::strerror(errno), ")");
  lock(o);
  if (!o.resume && holds_run(dir)) {
    if (!o.overwrite) {
      release_lock();
      fail(dir, " already holds a run; pass --resume to continue it, or --overwrite to move it aside and start over");
    }
    fs::path aside = move_run_aside(dir);
    if (!o.quiet) std::fprintf(stderr, "%s: --overwrite: the previous run in %s was moved to %s\n", o.what.c_str(), dir.c_str(), aside.c_str());
  }
  clean_up(o.quiet);
}

void RunDir::lock(const RunDirOptions& o) {
  const fs::path path = fs::path(dir_) / kLock;
  lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) fail(path.string(), ": cannot create the lock file (", std::strerror(errno), ")");
  char buf[32] = {0};
  ssize_t n = ::pread(lock_fd_, buf, sizeof buf - 1, 0);
  long owner = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
    fail(dir_, " is in use by another run (pid ", owner > 0 ? std::to_string(owner) : std::string("?"), ", lock file ",
         path.string(), "); wait for it to finish or choose another --out");
  }
  // flock is released when its process dies, so a pid left in the file is a run that did not finish.
  if (owner > 0 && owner != long(::getpid()) && !o.quiet)
    std::fprintf(stderr, "%s: taking over the stale lock of pid %ld in %s (that process is no longer running)\n",
                 o.what.c_str(), owner, dir_.c_str());
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size()))
    fail(path.string(), ": cannot write the lock file (", std::strerror(errno), ")");
}

RunDir::~RunDir() { release_lock(); }

void RunDir::release_lock() {
  if (lock_fd_ < 0) return;
  if (::ftruncate(lock_fd_, 0) != 0) {
  }  // an empty lock file: no run is using the folder
  ::close(lock_fd_);
  lock_fd_ = -1;
}

void RunDir::clean_up(bool quiet) {
  const fs::path dir(dir_), ckpt = dir / kCheckpoints;
  std::error_code ec;
  std::vector<fs::path> removed;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) removed.push_back(e.path());
  }
  std::vector<std::string> linked, names;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (is_checkpoint_link(e)) {
      linked.push_back(fs::read_symlink(e.path(), ec).filename().string());
      names.push_back(e.path().filename().string());
    }
  for (const std::string& name : names) ensure_file_links(dir, name);  // a kill may have come before them
  if (fs::is_directory(ckpt, ec))
    for (const auto& e : fs::directory_iterator(ckpt, ec)) {
      const std::string name = e.path().filename().string();
      bool used = std::find(linked.begin(), linked.end(), name) != linked.end();
      if (!used) removed.push_back(e.path());  // half-written, or superseded just before a kill
    }
  for (const fs::path& p : removed) {
    fs::remove_all(p, ec);
    if (!quiet) std::fprintf(stderr, "run folder %s: removed %s, left by an interrupted run\n", dir_.c_str(), p.filename().c_str());
  }
}

void RunDir::commit_checkpoint(const std::string& name, int64_t step,
                               const std::function<void(const std::string&, const std::string&)>& write) {
  const fs::path dir(dir_), ckpt = dir / kCheckpoints, link = dir / name;
  std::error_code ec;
  fs::create_directories(ckpt, ec);
  if (ec) fail(ckpt.string(), ": cannot create (", ec.message(), ")");
  std::string old_target;
  if (fs::is_symlink(link, ec)) old_target = fs::read_symlink(link, ec).string();
  std::string folder = name + "-s" + std::to_string(step);
  for (int n = 2; fs::exists(ckpt / folder, ec) || std::string(kCheckpoints) + "/" + folder == old_target; ++n)
    folder = name + "-s" + std::to_string(step) + "-" + std::to_string(n);
  const fs::path tmp = ckpt / (folder + ".tmp");
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec) fail(tmp.string(), ": cannot create (", ec.message(), ")");
  write((tmp / "model.safetensors").string(), (tmp / "state.safetensors").string());
  fsync_dir(tmp);
  fs::rename(tmp, ckpt / folder, ec);
  if (ec) fail((ckpt / folder).string(), ": cannot rename from ", tmp.string(), " (", ec.message(), ")");
  fsync_dir(ckpt);
  // The file links first (dangling until <name> exists), so that they are there the moment <name> is.
  ensure_file_links(dir, name, false);
  set_link(link, std::string(kCheckpoints) + "/" + folder);  // the commit point of model and state
  ensure_file_links(dir, name);
  fsync_dir(dir);
  if (!old_target.empty() && old_target.rfind(std::string(kCheckpoints) + "/", 0) == 0) fs::remove_all(dir / old_target, ec);
}

std::string RunDir::model_path(const std::string& name) const {
  fs::path p = fs::path(dir_) / name / "model.safetensors";
  return fs::exists(p) ? p.string() : std::string();
}

std::string RunDir::state_path(const std::string& name) const {
  fs::path p = fs::path(dir_) / name / "state.safetensors";
  return fs::exists(p) ? p.string() : std::string();
}

void swap_in_folder(const std::string& fresh, const std::string& dir) {
  std::error_code ec;
  fs::path old;
  if (fs::exists(dir, ec)) {
    old = dir + ".old-" + timestamp();
    for (int n = 2; fs::exists(old, ec); ++n) old = dir + ".old-" + timestamp() + "-" + std::to_string(n);
    fs::rename(dir, old, ec);
    if (ec) fail(dir, ": cannot move aside to ", old.string(), " (", ec.message(), ")");
  }
  fs::rename(fresh, dir, ec);
  if (ec) {
    std::error_code ec2;
    if (!old.empty()) fs::rename(old, dir, ec2);  // put the old folder back
    fail(dir, ": cannot move the new output from ", fresh, " into place (", ec.message(), ")");
  }
  if (!old.empty()) fs::remove_all(old, ec);  // replaced by a complete new folder only now
}

}  // namespace tv
