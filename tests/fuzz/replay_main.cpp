// Runs a fuzz target's LLVMFuzzerTestOneInput on files, without libFuzzer:
// the gcc build's "fuzz-replay: <name>" tests run every seed and every fixed
// crash input (regressions/<name>/) on every unit test run.
//
//   weft-fuzz-replay-<name> PATH...   a PATH is a file or a folder of files
//
// A failed property aborts (fuzz_check.hpp), which fails the test; a missing
// folder counts as empty (a target may have no regressions yet).

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    fs::path p{argv[i]};
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (auto& e : fs::directory_iterator{p})
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::exists(p, ec)) {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  for (auto& f : files) {
    std::ifstream in{f, std::ios::binary};
    std::string bytes{std::istreambuf_iterator<char>{in},
                      std::istreambuf_iterator<char>{}};
    if (!in.eof() && in.fail()) {
      std::fprintf(stderr, "cannot read %s\n", f.c_str());
      return 1;
    }
    // A copy the size of the input, so a read past its end is a bug that
    // the sanitizers (or a crash) can see.
    std::vector<uint8_t> data(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  std::printf("%zu inputs replayed, every property held\n", files.size());
  return 0;
}
