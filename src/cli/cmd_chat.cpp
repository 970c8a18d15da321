// `tinyvlm chat`: a conversation about an image in the terminal. The history is fed as phase 3 trains
// on it (<image>, then each turn " USER: " + msg / " ASSISTANT: " + msg tokenized on its own); the KV
// cache keeps the image and the history between turns, and the oldest exchanges are dropped, with a
// notice, when the next one would not fit in the context.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/inference_options.h"
#include "cli/vlm_session.h"
#include "core/parallel.h"
#include "model/chat_prompt.h"

namespace tv::cli {
namespace {

struct ChatArgs {
  std::string model, config, tokenizer, image;
  GenerationOptions gen;
  int64_t context = 0;  // text tokens after <image>; 0: instruct_max_seq_len - 1
  int threads = 0;
  std::vector<std::string> sets;
  std::string weights = "fp32";
};

struct Exchange {
  std::vector<int32_t> user, assistant;  // each turn's ids, formatted as in training
};

void run_chat(ChatArgs a) {
  validate_generation_options(a.gen);
  if (a.context < 0) fail("--context must be >= 0 (0 = instruct_max_seq_len - 1), got ", a.context);
  set_num_threads(a.threads);
  VlmSession s = open_vlm_session(a.model, a.config, a.tokenizer, a.sets);
  VisionLanguageModel& vlm = *s.vlm->model;
  apply_weights_option(vlm.llm(), a.weights, "chat");
  const tok::Tokenizer& tk = s.tokenizer;
  const int64_t context = a.context > 0 ? a.context : s.vlm->config.get_int("instruct_max_seq_len", 512) - 1;
  if (context < 2) fail("the context of ", context, " tokens is too small");
  a.gen.stop_ids = {s.eos};
  // Training puts the next " USER:" turn right after an answer: it ends the answer too.
  a.gen.stop_sequences = {tk.encode(" USER:")};
  const std::vector<int32_t> cue = encode_answer_cue(tk);
  // Room kept for the answer when old exchanges are dropped.
  const int64_t reserve = std::min<int64_t>(a.gen.max_new_tokens, context / 2);
  Generator g(vlm.llm(), a.gen);
  const bool tty = isatty(0);

  Tensor prefix;
  std::vector<Exchange> history;
  std::unique_ptr<GenerationState> st;
  auto set_image = [&](const std::string& path) {
    prefix = vlm.image_prefix_from_file(path);
    history.clear();
    st.reset();
    std::fprintf(stderr, "(image %s: %lld vision tokens; a new conversation)\n", path.c_str(),
                 (long long)vlm.num_vision_tokens());
  };
  if (!a.image.empty()) set_image(a.image);
  std::fprintf(stderr, "chat: %lld-token context; /image FILE, /reset, /quit%s\n", (long long)context,
               prefix.defined() ? "" : "; give /image FILE first");

  std::string line;
  while (true) {
    if (tty) std::fprintf(stderr, "you> ");
    if (!std::getline(std::cin, line)) break;
    const std::string msg = clean_chat_message(line);
    if (msg.empty()) continue;
    if (msg == "/quit" || msg == "/exit") break;
    if (msg == "/reset") {
      history.clear();
      std::fprintf(stderr, "(conversation cleared)\n");
      continue;
    }
    if (msg.rfind("/image", 0) == 0 && (msg.size() == 6 || msg[6] == ' ')) {
      const std::string path = clean_chat_message(msg.substr(6));
      if (path.empty()) {
        std::fprintf(stderr, "(usage: /image FILE)\n");
        continue;
      }
      try {
        set_image(path);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "(cannot use %s: %s)\n", path.c_str(), e.what());
      }
      continue;
    }
    if (msg[0] == '/') {
      std::fprintf(stderr, "(unknown command %s: /image FILE, /reset, /quit)\n", msg.c_str());
      continue;
    }
    if (!prefix.defined()) {
      std::fprintf(stderr, "(no image yet: /image FILE)\n");
      continue;
    }
    Exchange turn;
    turn.user = encode_chat_turn(tk, {true, msg});
    auto length = [&] {
      int64_t n = int64_t(turn.user.size() + cue.size()) + reserve;
      for (const Exchange& e : history) n += int64_t(e.user.size() + e.assistant.size());
      return n;
    };
    size_t dropped = 0;
    while (!history.empty() && length() > context) {
      history.erase(history.begin());
      ++dropped;
    }
    if (dropped)
      std::fprintf(stderr, "(the context of %lld tokens is full: dropped the %zu oldest exchange%s)\n",
                   (long long)context, dropped, dropped > 1 ? "s" : "");
    if (int64_t(turn.user.size() + cue.size()) + 1 > context) {
      std::fprintf(stderr, "(the message takes %zu tokens, more than the context of %lld allows)\n", turn.user.size(),
                   (long long)context);
      continue;
    }
    std::vector<int32_t> tokens;
    for (const Exchange& e : history) {
      tokens.insert(tokens.end(), e.user.begin(), e.user.end());
      tokens.insert(tokens.end(), e.assistant.begin(), e.assistant.end());
    }
    tokens.insert(tokens.end(), turn.user.begin(), turn.user.end());
    tokens.insert(tokens.end(), cue.begin(), cue.end());
    if (!st) {
      st = std::make_unique<GenerationState>(g.start(prefix, tokens, vlm.num_vision_tokens() + context));
    } else {
      g.resume(*st, tokens);
    }
    TextStream stream(tk);
    std::string answer;
    g.run(*st, [&](int32_t id) {
      const std::string piece = stream.push(id);
      answer += piece;
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
    });
    const std::string rest = stream.finish();
    answer += rest;
    std::printf("%s\n", rest.c_str());
    std::fflush(stdout);
    if (st->stop == StopReason::ContextFull) std::fprintf(stderr, "(the answer filled the context)\n");
    turn.assistant = encode_chat_turn(tk, {false, answer});
    history.push_back(std::move(turn));
  }
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  a->gen.max_new_tokens = 128;
  CLI::App* cmd = app.add_subcommand("chat", "Talk with a vision-language checkpoint about an image in the terminal");
  cmd->add_option("--model", a->model,
                  "Vision-language checkpoint: phase 2 (llm.*, vision_encoder.*) or 3-4 (vlm.*), .safetensors or .pt")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--config", a->config, "config.toml (default: the config stored in a tinyvlm checkpoint; required for a .pt)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json with <image> (default: the one recorded in the checkpoint)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--image", a->image, "JPEG or PNG file to talk about (or /image FILE in the chat)")
      ->check(CLI::ExistingFile);
  add_sampling_options(cmd, a->gen);
  add_weights_option(cmd, a->weights);
  cmd->add_option("--context", a->context,
                  "Text tokens the conversation may take after <image> (default: instruct_max_seq_len - 1)");
  cmd->add_option("--set", a->sets, "Override a config key (repeatable)");
  cmd->add_option("--threads", a->threads, "Worker threads (default: all cores)");
  cmd->callback([a] { run_chat(*a); });
}

}  // namespace tv::cli
