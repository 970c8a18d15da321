// Each subcommand lives in its own cmd_*.cpp and registers itself on the root app here.
#pragma once

namespace CLI {
class App;
}

namespace tv::cli {

void add_bench_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_pretrain_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_perplexity_command(CLI::App& app);
void add_tokenizer_commands(CLI::App& app);  // `tokenizer train|encode|decode` and `tokenize`
void add_align_command(CLI::App& app);
void add_encode_image_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_ask_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_instruct_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_dpo_command(CLI::App& app);

}  // namespace tv::cli
