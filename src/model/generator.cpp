#include "model/generator.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "tokenizer/bpe.h"

namespace tv {

void validate_generation_options(const GenerationOptions& o) {
  const SamplerOptions& s = o.sampling;
  if (!(s.temperature >= 0) || !std::isfinite(s.temperature))
    fail("--temperature must be a finite number >= 0 (0 = greedy), got ", s.temperature);
  if (s.top_k < 0) fail("--top-k must be >= 0 (0 = off), got ", s.top_k);
  if (!(s.top_p > 0 && s.top_p <= 1)) fail("--top-p must be in (0, 1] (1 = off), got ", s.top_p);
  if (!(s.repetition_penalty > 0) || !std::isfinite(s.repetition_penalty))
    fail("--repetition-penalty must be a finite number > 0 (1 = off), got ", s.repetition_penalty);
  if (o.max_new_tokens < 1) fail("--max-tokens must be >= 1, got ", o.max_new_tokens);
  if (!(std::fabs(o.frequency_penalty) <= 2) || !(std::fabs(o.presence_penalty) <= 2))
    fail("frequency_penalty and presence_penalty must be in [-2, 2], got ", o.frequency_penalty, " and ",
         o.presence_penalty);
}

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Running: return "running";
    case StopReason::StopId: return "end of sequence";
    case StopReason::StopSequence: return "stop sequence";
    case StopReason::MaxTokens: return "token limit";
    case StopReason::ContextFull: return "context full";
  }
  return "?";
}

Generator::Generator(Llama& llm, GenerationOptions options) : llm_(&llm), opt_(std::move(options)) {}

void Generator::feed(GenerationState& s, size_t from, bool with_prefix) const {
  Llama& m = *llm_;
  const int64_t V = m.config().vocab_size, P = s.prefix_len();
  const int64_t n_new = int64_t(s.tokens.size() - from);
  with_prefix = with_prefix && P > 0;
  TV_CHECK(n_new > 0 || with_prefix, "Generator: nothing to feed");
  TV_CHECK(!with_prefix || from == 0, "Generator: the prefix comes before every token");
  Tensor logits;
  if (opt_.use_cache) {
    // Keys and values after the kept part are overwritten: the cache just forgets them.
    s.cache.len = (with_prefix ? 0 : P) + int64_t(from);
    Tensor x0;
    if (with_prefix) {
      x0 = Tensor::empty({P + n_new, m.config().d_model});
      x0.narrow(0, 0, P).copy_from(s.prefix);
      if (n_new) x0.narrow(0, P, n_new).copy_from(m.embed(Tensor::from_i32({n_new}, s.tokens)));
    } else {
      x0 = m.embed(Tensor::from_i32({n_new}, std::vector<int32_t>(s.tokens.begin() + int64_t(from), s.tokens.end())));
    }
    logits = m.forward_cached(x0, s.cache);
  } else {
    // The original's way: the whole sequence again, only the last position projected to the vocabulary.
    const int64_t S = int64_t(s.tokens.size()), T = P + S;
    Tensor x0 = Tensor::empty({T, m.config().d_model});
    if (P) x0.narrow(0, 0, P).copy_from(s.prefix);
    if (S) x0.narrow(0, P, S).copy_from(m.embed(Tensor::from_i32({S}, s.tokens)));
    Tensor last = Tensor::from_i32({1}, {int32_t(T - 1)});
    logits = m.forward(x0, 1, T, false, &last);
  }
  s.cached = int64_t(s.tokens.size());
  s.logits.assign(logits.data<float>(), logits.data<float>() + V);
}

GenerationState Generator::start(const Tensor& prefix, const std::vector<int32_t>& prompt, int64_t capacity) const {
  const ModelConfig& mc = llm_->config();
  GenerationState s;
  if (prefix.defined()) {
    TV_CHECK(prefix.ndim() == 2 && prefix.size(1) == mc.d_model && prefix.dtype() == DType::F32,
             "Generator: the prefix should be f32 [P, ", mc.d_model, "], got ", prefix.describe());
    s.prefix = prefix.to(Device::CPU).contiguous();
  }
  if (s.prefix_len() == 0 && prompt.empty()) fail("the prompt is empty");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= mc.vocab_size)
      fail("prompt token id ", prompt[i], " at position ", i, " is outside the vocabulary of ", mc.vocab_size);
  s.tokens = prompt;
  s.capacity = capacity > 0 ? capacity : s.length() + opt_.max_new_tokens;
  if (s.length() > s.capacity)
    fail("the prompt takes ", s.length(), " positions, more than the context of ", s.capacity);
  s.rng = Rng(opt_.seed);
  if (opt_.use_cache) s.cache = llm_->make_cache(s.capacity);
  feed(s, 0, true);
  return s;
}

void Generator::resume(GenerationState& s, const std::vector<int32_t>& tokens) const {
  const ModelConfig& mc = llm_->config();
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= mc.vocab_size)
      fail("token id ", tokens[i], " at position ", i, " is outside the vocabulary of ", mc.vocab_size);
  if (s.prefix_len() + int64_t(tokens.size()) > s.capacity)
    fail("the sequence takes ", s.prefix_len() + int64_t(tokens.size()), " positions, more than the context of ",
         s.capacity);
  if (s.prefix_len() == 0 && tokens.empty()) fail("the prompt is empty");
  size_t common = 0;
  while (common < tokens.size() && int64_t(common) < s.cached && tokens[common] == s.tokens[common]) ++common;
  // The last token is always fed again unless new ones follow: its logits are the ones to sample from.
  if (common == tokens.size() && common > 0) --common;
  s.tokens = tokens;
  s.generated.clear();
  s.emitted = 0;
  s.stop = StopReason::Running;
  // With nothing but the prefix left, its own last position gives the logits.
  feed(s, common, tokens.empty());
}

int32_t Generator::pick(GenerationState& s, bool& go_on) const {
  go_on = false;
  if (s.done()) return -1;
  if (s.length() >= s.capacity) {
    s.stop = StopReason::ContextFull;
    return -1;
  }
  int32_t next;
  if (opt_.frequency_penalty != 0 || opt_.presence_penalty != 0) {
    std::vector<float> logits = s.logits;
    std::vector<int32_t> count(logits.size(), 0);
    for (int32_t t : s.generated)
      if (t >= 0 && size_t(t) < count.size()) ++count[size_t(t)];
    for (size_t t = 0; t < count.size(); ++t)
      if (count[t]) logits[t] -= float(count[t] * opt_.frequency_penalty + opt_.presence_penalty);
    next = sample_next(std::move(logits), s.tokens, opt_.sampling, s.rng);
  } else if (opt_.sampling.temperature <= 0 && opt_.sampling.repetition_penalty == 1.0) {
    // Plain greedy reads the logits in place (sample_next would copy them): the first largest.
    next = int32_t(std::max_element(s.logits.begin(), s.logits.end()) - s.logits.begin());
  } else {
    next = sample_next(s.logits, s.tokens, opt_.sampling, s.rng);
  }
  if (std::find(opt_.stop_ids.begin(), opt_.stop_ids.end(), next) != opt_.stop_ids.end()) {
    s.stop = StopReason::StopId;
    return -1;
  }
  s.tokens.push_back(next);
  s.generated.push_back(next);
  for (const std::vector<int32_t>& q : opt_.stop_sequences) {
    if (q.empty() || q.size() > s.generated.size()) continue;
    if (std::equal(q.begin(), q.end(), s.generated.end() - int64_t(q.size()))) {
      // Cut it from the answer; its positions in the cache are forgotten (resume feeds what follows).
      s.generated.resize(s.generated.size() - q.size());
      s.tokens.resize(s.tokens.size() - q.size());
      s.cached = std::min<int64_t>(s.cached, int64_t(s.tokens.size()));
      s.stop = StopReason::StopSequence;
      return next;
    }
  }
  if (int64_t(s.generated.size()) >= opt_.max_new_tokens) {
    s.stop = StopReason::MaxTokens;  // not fed: nothing will be sampled after it
    return next;
  }
  if (s.length() >= s.capacity) {
    s.stop = StopReason::ContextFull;
    return next;
  }
  go_on = true;
  return next;
}

int32_t Generator::step(GenerationState& s) const {
  BatchEntry e{this, &s};
  step_batch(std::span<BatchEntry>(&e, 1));
  return e.token;
}

void step_batch(std::span<BatchEntry> batch) {
  // The decode rows of this step, in buffers that only grow.
  thread_local std::vector<int32_t> tokens;
  thread_local std::vector<KVCache*> caches;
  thread_local std::vector<GenerationState*> states;
  tokens.clear();
  caches.clear();
  states.clear();
  Llama* llm = nullptr;
  for (size_t i = 0; i < batch.size(); ++i) {
    BatchEntry& e = batch[i];
    TV_CHECK(e.gen && e.state, "step_batch: entry ", i, " has no generator or state");
    TV_CHECK(!llm || e.gen->llm_ == llm, "step_batch: entry ", i, " runs on another model than entry 0");
    llm = e.gen->llm_;
    for (size_t j = 0; j < i; ++j)
      TV_CHECK(batch[j].state != e.state, "step_batch: entries ", j, " and ", i, " hold the same state");
  }
  for (BatchEntry& e : batch) {
    bool go_on = false;
    GenerationState& s = *e.state;
    e.token = e.gen->pick(s, go_on);
    if (!go_on) continue;
    if (!e.gen->opt_.use_cache) {
      e.gen->feed(s, s.tokens.size() - 1, false);
      continue;
    }
    // The cache holds the prefix and every token before the new one.
    s.cache.len = s.prefix_len() + int64_t(s.tokens.size()) - 1;
    tokens.push_back(e.token);
    caches.push_back(&s.cache);
    states.push_back(&s);
  }
  if (tokens.empty()) return;
  const Tensor logits = llm->forward_decode(tokens, caches);
  const int64_t V = llm->config().vocab_size;
  const float* l = logits.data<float>();
  for (size_t i = 0; i < states.size(); ++i) {
    GenerationState& s = *states[i];
    s.cached = int64_t(s.tokens.size());
    s.logits.assign(l + int64_t(i) * V, l + int64_t(i + 1) * V);
  }
}

std::vector<int32_t> Generator::take_final(GenerationState& s) const {
  size_t end = s.generated.size();
  if (!s.done()) {
    // Hold back the longest tail that is a proper beginning of a stop sequence.
    size_t hold = 0;
    for (const std::vector<int32_t>& q : opt_.stop_sequences)
      for (size_t k = q.empty() ? 0 : std::min(q.size() - 1, s.generated.size()); k > hold; --k)
        if (std::equal(q.begin(), q.begin() + int64_t(k), s.generated.end() - int64_t(k))) {
          hold = k;
          break;
        }
    end -= hold;
  }
  std::vector<int32_t> out;
  if (end > s.emitted) out.assign(s.generated.begin() + int64_t(s.emitted), s.generated.begin() + int64_t(end));
  s.emitted = std::max(s.emitted, end);
  return out;
}

const std::vector<int32_t>& Generator::run(GenerationState& s, const std::function<void(int32_t)>& on_token) const {
  while (!s.done()) {
    step(s);
    if (on_token)
      for (int32_t t : take_final(s)) on_token(t);
  }
  if (on_token)
    for (int32_t t : take_final(s)) on_token(t);
  return s.generated;
}

namespace {
bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}
}  // namespace

std::string TextStream::push(int32_t id) {
  ids_.push_back(id);
  // The held tokens decoded together; once they end on a whole character (not U+FFFD, which a cut
  // multi-byte character decodes to), the next ones cannot change this text: it is final.
  std::string text = tk_->decode(ids_.data() + start_, ids_.size() - start_);
  if (ends_with_replacement(text)) return {};
  start_ = ids_.size();
  return text;
}

std::string TextStream::finish() {
  std::string text = tk_->decode(ids_.data() + start_, ids_.size() - start_);
  start_ = ids_.size();
  return text;
}

}  // namespace tv
