// tinyvlm: train and run a LLaMA-4-style tiny vision-language model.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"tinyvlm: train and run a LLaMA-4-style tiny vision-language model, from scratch, in C++"};
  app.set_version_flag("--version", "tinyvlm 0.1.0");
  app.require_subcommand(1);
  app.fallthrough(false);

  tv::cli::add_pretrain_command(app);
  tv::cli::add_generate_command(app);
  tv::cli::add_perplexity_command(app);
  tv::cli::add_bench_command(app);
  tv::cli::add_tokenizer_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const tv::Error& e) {
    std::fprintf(stderr, "tinyvlm: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tinyvlm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
