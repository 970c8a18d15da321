// The server's scheduler: one thread owns the model and advances every admitted request, up to
// `parallel` at a time, each in its own GenerationState (its own KV cache). New requests join between
// steps, one prefill per step (continuous batching); the rest wait in a bounded queue. A request whose client went away, or
// whose deadline passed, leaves at the next step and frees its slot.
//
// step_slots() advances all running slots by one token in one batched decode step (step_batch: one
// weight pass for all of them, each slot with its own sampling options and KV cache); with batching off
// (serve --no-batch) it steps them one after another, as a baseline for benchmarks.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "model/generator.h"

namespace tv {
class VisionLanguageModel;
namespace tok {
class Tokenizer;
}
}  // namespace tv

namespace tv::server {

// The model the server answers with (owned by the caller, used only by the scheduler thread, except the
// tokenizer, whose encode and decode are thread-safe).
struct ServedModel {
  Llama* llm = nullptr;
  VisionLanguageModel* vlm = nullptr;  // null for a text model
  const tok::Tokenizer* tokenizer = nullptr;
  int32_t eos = 2;
  std::string name;      // the id /v1/models lists
  int64_t context = 0;   // positions per sequence (vision tokens included)
  int64_t image_size = 0, image_resize = 0, vision_tokens = 0;
};

using Clock = std::chrono::steady_clock;

// One request's work and its results, shared by the HTTP handler and the scheduler.
struct Job {
  // Input, fixed before submit.
  Tensor pixels;                  // preprocessed image [3, S, S], or undefined
  std::vector<int32_t> prompt;    // ids after the image
  GenerationOptions gen;
  std::vector<std::string> stop_strings;  // text-level stops (cut from the answer)
  int64_t capacity = 0;           // positions the sequence may take
  Clock::time_point submitted, deadline;
  std::atomic<bool> cancelled{false};  // set by the handler when the client is gone

  // Output, guarded by m; cv signals new text or the end.
  std::mutex m;
  std::condition_variable cv;
  std::string text;             // all text released so far
  size_t text_taken = 0;        // bytes of text a streaming handler has sent
  std::vector<int32_t> ids;     // generated ids
  bool finished = false;
  std::string finish_reason;    // "stop" or "length"
  int error_status = 0;         // non-zero: the request failed (error_message)
  std::string error_message, error_code;
  int64_t prompt_tokens = 0;    // positions of the prompt (vision tokens included)
  double first_token_ms = -1;   // from submit to the first token
};

// Counters for GET /metrics.
struct Metrics {
  std::mutex m;
  std::vector<std::pair<std::string, int64_t>> requests;  // "endpoint status" -> count
  std::atomic<int64_t> prompt_tokens{0}, completion_tokens{0}, rejected_full{0}, timeouts{0}, cancelled{0};
  static constexpr double kTtftBuckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  int64_t ttft_counts[std::size(kTtftBuckets) + 1] = {};  // guarded by m; last: +Inf
  double ttft_sum = 0;
  int64_t ttft_n = 0;
  void count_request(const std::string& endpoint, int status);
  void observe_ttft(double seconds);
};

class Scheduler {
 public:
  // batch: advance the running slots with one batched step (false: one after another).
  Scheduler(const ServedModel& model, int parallel, size_t max_queue, Metrics& metrics, bool batch = true);
  ~Scheduler();
  // Queues the job; false when the queue is full (the caller answers 503).
  bool submit(const std::shared_ptr<Job>& job);
  size_t queue_depth();
  int active() const { return active_.load(); }
  int parallel() const { return int(slots_.size()); }
  void shutdown();

 private:
  struct Slot {
    std::shared_ptr<Job> job;
    std::unique_ptr<Generator> gen;
    GenerationState state;
    std::unique_ptr<TextStream> stream;
    std::string held;  // decoded text not yet released: it may begin a stop string
    bool stop_hit = false;  // a stop string ended the answer
    bool busy() const { return job != nullptr; }
  };
  void loop();
  void admit(Slot& s, std::shared_ptr<Job> job);
  void step_slots(const std::vector<Slot*>& running);
  void release(Slot& s, const std::string& piece);  // text through the stop-string filter
  void emit(Slot& s, const std::string& text);      // text for the client
  void finish(Slot& s, const std::string& reason);
  void fail_job(Slot& s, int status, const std::string& message, const std::string& code);

  ServedModel model_;
  Metrics& metrics_;
  std::vector<Slot> slots_;
  size_t max_queue_;
  bool batch_ = true;
  std::vector<BatchEntry> entries_;  // the batched step's entries, reused
  std::mutex qm_;
  std::condition_variable qcv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::atomic<int> active_{0};
  std::thread thread_;
};

}  // namespace tv::server
