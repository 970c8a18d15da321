#include "server/scheduler.h"

#include <algorithm>

#include "core/error.h"
#include "model/vlm.h"

namespace tv::server {

void Metrics::count_request(const std::string& endpoint, int status) {
  const std::string key = endpoint + " " + std::to_string(status);
  std::lock_guard<std::mutex> lk(m);
  for (auto& [k, n] : requests)
    if (k == key) {
      ++n;
      return;
    }
  requests.emplace_back(key, 1);
}

void Metrics::observe_ttft(double seconds) {
  std::lock_guard<std::mutex> lk(m);
  size_t b = 0;
  while (b < std::size(kTtftBuckets) && seconds > kTtftBuckets[b]) ++b;
  ++ttft_counts[b];
  ttft_sum += seconds;
  ++ttft_n;
}

Scheduler::Scheduler(const ServedModel& model, int parallel, size_t max_queue, Metrics& metrics, bool batch)
    : model_(model), metrics_(metrics), slots_(size_t(std::max(parallel, 1))), max_queue_(max_queue), batch_(batch) {
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { shutdown(); }

void Scheduler::shutdown() {
  {
    std::lock_guard<std::mutex> lk(qm_);
    stopping_ = true;
  }
  qcv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Scheduler::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lk(qm_);
    if (stopping_ || queue_.size() >= max_queue_) return false;
    queue_.push_back(job);
  }
  qcv_.notify_one();
  return true;
}

size_t Scheduler::queue_depth() {
  std::lock_guard<std::mutex> lk(qm_);
  return queue_.size();
}

void Scheduler::fail_job(Slot& s, int status, const std::string& message, const std::string& code) {
  {
    std::lock_guard<std::mutex> lk(s.job->m);
    s.job->error_status = status;
    s.job->error_message = message;
    s.job->error_code = code;
    s.job->finished = true;
  }
  s.job->cv.notify_all();
  s.job.reset();
  s.gen.reset();
  s.state = GenerationState();
  s.stream.reset();
}

void Scheduler::admit(Slot& s, std::shared_ptr<Job> job) {
  s.job = std::move(job);
  s.held.clear();
  s.stop_hit = false;
  Job& j = *s.job;
  try {
    s.gen = std::make_unique<Generator>(*model_.llm, j.gen);
    Tensor prefix;
    if (j.pixels.defined()) prefix = model_.vlm->image_prefix(j.pixels);
    s.state = s.gen->start(prefix, j.prompt, j.capacity);  // the prefill
    s.stream = std::make_unique<TextStream>(*model_.tokenizer);
    std::lock_guard<std::mutex> lk(j.m);
    j.prompt_tokens = s.state.length();
  } catch (const std::exception& e) {
    fail_job(s, 400, e.what(), "");
  }
}

// Text goes out only once it can no longer be the beginning of a stop string; a stop string found ends
// the answer before it.
void Scheduler::release(Slot& s, const std::string& piece) {
  Job& j = *s.job;
  s.held += piece;
  size_t cut = std::string::npos;
  for (const std::string& stop : j.stop_strings) cut = std::min(cut, s.held.find(stop));
  std::string out;
  if (cut != std::string::npos) {
    out = s.held.substr(0, cut);
    s.held.clear();
    s.stop_hit = true;
  } else {
    size_t hold = 0;
    for (const std::string& stop : j.stop_strings)
      for (size_t k = std::min(stop.size() - 1, s.held.size()); k > hold; --k)
        if (s.held.compare(s.held.size() - k, k, stop, 0, k) == 0) {
          hold = k;
          break;
        }
    // The held tail is the beginning of a stop string, which starts on a character boundary.
    out = s.held.substr(0, s.held.size() - hold);
    s.held.erase(0, s.held.size() - hold);
  }
  emit(s, out);
}

void Scheduler::emit(Slot& s, const std::string& out) {
  Job& j = *s.job;
  if (out.empty()) return;
  {
    std::lock_guard<std::mutex> lk(j.m);
    if (j.first_token_ms < 0) {
      j.first_token_ms = 1e3 * std::chrono::duration<double>(Clock::now() - j.submitted).count();
      metrics_.observe_ttft(j.first_token_ms / 1e3);
    }
    j.text += out;
  }
  j.cv.notify_all();
}

void Scheduler::finish(Slot& s, const std::string& reason) {
  Job& j = *s.job;
  {
    std::lock_guard<std::mutex> lk(j.m);
    j.ids = s.state.generated;
    j.finish_reason = reason;
    j.finished = true;
    if (j.first_token_ms < 0) {
      j.first_token_ms = 1e3 * std::chrono::duration<double>(Clock::now() - j.submitted).count();
      metrics_.observe_ttft(j.first_token_ms / 1e3);
    }
  }
  metrics_.prompt_tokens += j.prompt_tokens;
  metrics_.completion_tokens += int64_t(s.state.generated.size());
  j.cv.notify_all();
  s.job.reset();
  s.gen.reset();
  s.state = GenerationState();
  s.stream.reset();
}

// One token for every running slot: one batched decode step for all of them (each slot's own options,
// stops and cache), or, with batching off, one step per slot. A failed batched step fails every slot in
// it (its states are not consistent any more).
void Scheduler::step_slots(const std::vector<Slot*>& running) {
  if (running.empty()) return;
  if (batch_) {
    entries_.clear();
    for (Slot* s : running) entries_.push_back({s->gen.get(), &s->state});
    try {
      step_batch(entries_);
    } catch (const std::exception& e) {
      for (Slot* s : running) fail_job(*s, 500, std::string("generation failed: ") + e.what(), "");
    }
    return;
  }
  for (Slot* s : running) {
    try {
      s->gen->step(s->state);
    } catch (const std::exception& e) {
      fail_job(*s, 500, std::string("generation failed: ") + e.what(), "");
    }
  }
}

void Scheduler::loop() {
  while (true) {
    // Admit queued requests into free slots (between steps: continuous batching).
    std::vector<std::shared_ptr<Job>> admitted;
    {
      std::unique_lock<std::mutex> lk(qm_);
      const bool any_busy = std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.busy(); });
      if (!any_busy) qcv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      // One prefill per step: the running requests' next tokens wait for one prefill, not for a whole
      // burst of new requests, whose first tokens then come out one step apart.
      size_t free_slots = std::min<size_t>(
          1, size_t(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.busy(); })));
      while (free_slots && !queue_.empty()) {
        admitted.push_back(std::move(queue_.front()));
        queue_.pop_front();
        --free_slots;
      }
    }
    for (std::shared_ptr<Job>& job : admitted) {
      Slot* free = nullptr;
      for (Slot& s : slots_)
        if (!s.busy()) {
          free = &s;
          break;
        }
      const Clock::time_point now = Clock::now();
      if (job->cancelled) {
        ++metrics_.cancelled;
        std::lock_guard<std::mutex> lk(job->m);
        job->finished = true;
        job->error_status = 499;
        continue;
      }
      free->job = job;
      if (now > job->deadline) {
        ++metrics_.timeouts;
        fail_job(*free, 503, "the request timed out waiting for a slot", "timeout");
        continue;
      }
      admit(*free, std::move(job));
    }
    // Leave: cancelled and timed-out requests; collect the running ones.
    std::vector<Slot*> running;
    const Clock::time_point now = Clock::now();
    for (Slot& s : slots_) {
      if (!s.busy()) continue;
      if (s.job->cancelled) {
        ++metrics_.cancelled;
        fail_job(s, 499, "the client went away", "");
        continue;
      }
      if (now > s.job->deadline) {
        ++metrics_.timeouts;
        fail_job(s, 503, "the request timed out", "timeout");
        continue;
      }
      running.push_back(&s);
    }
    active_ = int(running.size());
    step_slots(running);
    for (Slot* s : running) {
      if (!s->busy()) continue;  // failed in the step
      for (int32_t id : s->gen->take_final(s->state)) {
        release(*s, s->stream->push(id));
        if (s->stop_hit) break;
      }
      if (!s->stop_hit && !s->state.done()) continue;
      if (!s->stop_hit) {
        release(*s, s->stream->finish());
        if (!s->stop_hit) emit(*s, s->held);  // the end: a held beginning of a stop string is answer text
      }
      // A stop id, stop sequence or stop string: "stop"; the token limit or a full context: "length".
      const bool stopped = s->stop_hit || s->state.stop == StopReason::StopId ||
                           s->state.stop == StopReason::StopSequence;
      finish(*s, stopped ? "stop" : "length");
    }
    active_ = int(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.busy(); }));
  }
  // Shutting down: every queued or running request ends with 503.
  for (Slot& s : slots_)
    if (s.busy()) fail_job(s, 503, "the server is shutting down", "");
  std::lock_guard<std::mutex> lk(qm_);
  for (auto& job : queue_) {
    std::lock_guard<std::mutex> jl(job->m);
    job->finished = true;
    job->error_status = 503;
    job->error_message = "the server is shutting down";
    job->cv.notify_all();
  }
  queue_.clear();
}

}  // namespace tv::server
