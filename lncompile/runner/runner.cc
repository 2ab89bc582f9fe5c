// lncompile runner: load a library built by lncompile, run its Relax VM `main` on .npy inputs, write .npy outputs.
//
// Needs only TVM's C++ runtime (libtvm_runtime.so + libtvm_ffi.so), no Python: this is what runs on a board,
// or under qemu-aarch64 on an x86 machine.
//
//   runner LIB.so IN.npy[,IN2.npy...] OUT.npy [--repeat N] [--device cpu|cuda]
//
// --device cuda runs a library built for a CUDA preset: it loads libtvm_runtime_cuda.so (found like the other
// two libraries, beside the runner or on LD_LIBRARY_PATH), copies the inputs to GPU 0 and the outputs back;
// each timed run ends with a stream sync, so the times are whole inferences.
//
// The first output goes to OUT.npy, output k > 0 to OUT_k.npy. With --repeat N the model runs once more
// (the output run doubles as warm-up), then N timed times, and one line is printed:
//   timing: runs=N mean_ms=... min_ms=... max_ms=...
// Only float32, C-order, little-endian .npy files are accepted (no pickles, no object arrays).
// Exit status: 0 ok, 2 bad arguments or input file, 1 runtime failure; errors are one line on stderr.

#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ffi = tvm::ffi;

namespace {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Array {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// ---- minimal .npy (format 1.0 - 3.0) for float32 C-order arrays ----

constexpr char kMagic[] = "\x93NUMPY";

// The value text after `'key':` in the header dict (up to the next top-level comma or the closing brace).
std::string HeaderField(const std::string& header, const std::string& key) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) throw UsageError("npy header lacks '" + key + "'");
  at = header.find(':', at);
  if (at == std::string::npos) throw UsageError("malformed npy header");
  size_t end = at + 1;
  int depth = 0;
  for (; end < header.size(); ++end) {
    char c = header[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  if (depth != 0 || end >= header.size()) throw UsageError("malformed npy header");
  std::string value = header.substr(at + 1, end - at - 1);
  value.erase(0, value.find_first_not_of(" \t"));
  value.erase(value.find_last_not_of(" \t") + 1);
  return value;
}

std::vector<int64_t> ParseShape(const std::string& text) {
  if (text.size() < 2 || text.front() != '(' || text.back() != ')') throw UsageError("bad npy shape " + text);
  std::vector<int64_t> shape;
  std::stringstream items(text.substr(1, text.size() - 2));
  std::string item;
  while (std::getline(items, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty()) continue;  // the trailing comma of a 1-tuple
    if (item.find_first_not_of("0123456789") != std::string::npos || item.size() > 15) {
      throw UsageError("bad npy shape " + text);
    }
    shape.push_back(std::stoll(item));
  }
  return shape;
}

Array ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot open " + path);
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 6) != 0) throw UsageError(path + " is not a .npy file");
  uint8_t major = static_cast<uint8_t>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) throw UsageError(path + ": truncated npy header");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) throw UsageError(path + ": truncated npy header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    throw UsageError(path + ": unsupported npy version " + std::to_string(major));
  }
  if (header_len > (1u << 20)) throw UsageError(path + ": npy header too large");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) throw UsageError(path + ": truncated npy header");
  std::string descr = HeaderField(header, "descr");
  if (descr != "'<f4'") throw UsageError(path + ": dtype " + descr + " is not float32 (<f4)");
  if (HeaderField(header, "fortran_order") != "False") throw UsageError(path + ": Fortran-order arrays are not read");
  Array array;
  array.shape = ParseShape(HeaderField(header, "shape"));
  size_t count = 1;
  for (int64_t d : array.shape) {
    if (d > (int64_t{1} << 31) || count > (size_t{1} << 34) / std::max<int64_t>(d, 1)) {
      throw UsageError(path + ": array too large");
    }
    count *= static_cast<size_t>(d);
  }
  array.data.resize(count);
  if (!in.read(reinterpret_cast<char*>(array.data.data()), static_cast<std::streamsize>(count * sizeof(float)))) {
    throw UsageError(path + ": truncated data (" + std::to_string(count) + " float32 values expected)");
  }
  in.peek();
  if (!in.eof()) throw UsageError(path + ": trailing bytes after the array data");
  return array;
}

void WriteNpy(const std::string& path, const std::vector<int64_t>& shape, const float* data, size_t count) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 2);  // (1, 1000) but (5,)
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  // Write beside the target and rename: a reader never sees a half-written file.
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw UsageError("cannot write " + path);
    out.write(kMagic, 6);
    const char version[2] = {1, 0};
    out.write(version, 2);
    const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                  static_cast<unsigned char>(header.size() >> 8)};
    out.write(reinterpret_cast<const char*>(len), 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(float)));
    if (!out.flush()) throw UsageError("cannot write " + path);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw UsageError("cannot write " + path);
}

// ---- TVM ----

struct CPUAlloc {
  void AllocData(DLTensor* t) {
    t->data = std::aligned_alloc(64, (ffi::GetDataSize(*t) + 63) / 64 * 64);
    if (t->data == nullptr) throw std::bad_alloc();
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

ffi::Tensor ToTensor(const Array& array) {
  DLDevice cpu{kDLCPU, 0};
  ffi::Tensor t = ffi::Tensor::FromNDAlloc(CPUAlloc(), ffi::ShapeView(array.shape.data(), array.shape.size()),
                                           DLDataType{kDLFloat, 32, 1}, cpu);
  std::memcpy(t.data_ptr(), array.data.data(), array.data.size() * sizeof(float));
  return t;
}

// The device the library's kernels run on, and how tensors cross to it and back.
struct Device {
  DLDevice dev{kDLCPU, 0};

  static Device Parse(const std::string& name) {
    if (name == "cpu") return Device{};
    if (name != "cuda") throw UsageError("--device takes cpu or cuda, not '" + name + "'");
    // Registers the CUDA device API and the loader of the library's embedded kernels (cubin).
    if (dlopen("libtvm_runtime_cuda.so", RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      throw std::runtime_error(std::string("cannot load TVM's CUDA runtime: ") + dlerror());
    }
    return Device{DLDevice{kDLCUDA, 0}};
  }

  bool is_cpu() const { return dev.device_type == kDLCPU; }

  static ffi::Function Global(const char* name) {
    ffi::Optional<ffi::Function> f = ffi::Function::GetGlobal(name);
    if (!f) throw std::runtime_error(std::string("TVM runtime lacks ") + name);
    return *f;
  }

  ffi::Tensor Copy(const ffi::Tensor& src, DLDevice to) const {
    static ffi::Function alloc = Global("runtime.TVMTensorAllocWithScope");
    static ffi::Function copy = Global("runtime.TVMTensorCopyFromTo");
    ffi::Shape shape(src.shape().begin(), src.shape().end());
    ffi::Tensor dst = alloc(shape, src.dtype(), to, ffi::Optional<ffi::String>()).cast<ffi::Tensor>();
    copy(src, dst);
    return dst;
  }

  ffi::Tensor ToDevice(const ffi::Tensor& host) const { return is_cpu() ? host : Copy(host, dev); }
  ffi::Tensor ToHost(const ffi::Tensor& t) const {
    return t.device().device_type == kDLCPU ? t : Copy(t, DLDevice{kDLCPU, 0});
  }

  void Sync() const {
    if (is_cpu()) return;  // CPU kernels have returned when the call does
    static ffi::Function sync = Global("runtime.Device_StreamSync");
    sync(dev, static_cast<int64_t>(0));
  }
};

std::vector<ffi::Tensor> Outputs(const ffi::Any& result) {
  if (auto t = result.as<ffi::Tensor>()) return {*t};
  if (auto items = result.as<ffi::Array<ffi::Any>>()) {
    std::vector<ffi::Tensor> outs;
    for (const ffi::Any& item : *items) {
      auto t = item.as<ffi::Tensor>();
      if (!t) throw std::runtime_error("main returned a nested or non-tensor output");
      outs.push_back(*t);
    }
    return outs;
  }
  throw std::runtime_error("main returned neither a tensor nor a tuple of tensors");
}

std::string OutputPath(const std::string& first, size_t k) {
  if (k == 0) return first;
  std::string stem = first.size() > 4 && first.substr(first.size() - 4) == ".npy" ? first.substr(0, first.size() - 4)
                                                                                  : first;
  return stem + "_" + std::to_string(k) + ".npy";
}

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, sep)) parts.push_back(item);
  return parts;
}

int Run(int argc, char** argv) {
  std::vector<std::string> positional;
  long repeat = 0;
  std::string device_name = "cpu";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--repeat" && i + 1 < argc) {
      char* end = nullptr;
      repeat = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || repeat < 0) throw UsageError("--repeat takes a non-negative integer");
    } else if (arg == "--device" && i + 1 < argc) {
      device_name = argv[++i];
    } else if (arg == "-h" || arg == "--help") {
      std::cout << "usage: runner LIB.so IN.npy[,IN2.npy...] OUT.npy [--repeat N] [--device cpu|cuda]\n";
      return 0;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 3) {
    throw UsageError("usage: runner LIB.so IN.npy[,IN2.npy...] OUT.npy [--repeat N] [--device cpu|cuda]");
  }
  const Device device = Device::Parse(device_name);

  std::vector<ffi::Tensor> inputs;
  for (const std::string& path : Split(positional[1], ',')) {
    inputs.push_back(device.ToDevice(ToTensor(ReadNpy(path))));
  }

  // dlopen searches the library path for a bare name; a file name means this directory.
  std::string library = positional[0].find('/') == std::string::npos ? "./" + positional[0] : positional[0];
  ffi::Module lib = ffi::Module::LoadFromFile(library);
  ffi::Optional<ffi::Function> load_exec = lib->GetFunction("vm_load_executable");
  if (!load_exec) throw std::runtime_error(positional[0] + " holds no Relax VM executable");
  ffi::Module vm = (*load_exec)().cast<ffi::Module>();
  // The device, then the CPU for host-side shape code, each with the pooled allocator (2), as
  // tvm.relax.VirtualMachine does by default.
  constexpr int kPooled = 2;
  ffi::Function init = vm->GetFunction("vm_initialization").value();
  if (device.is_cpu()) {
    init(static_cast<int>(kDLCPU), 0, kPooled);
  } else {
    init(static_cast<int>(device.dev.device_type), device.dev.device_id, kPooled,  //
         static_cast<int>(kDLCPU), 0, kPooled);
  }
  ffi::Function main_fn = vm->GetFunction("main").value();

  std::vector<ffi::AnyView> args(inputs.begin(), inputs.end());
  auto call = [&]() {
    ffi::Any result;
    main_fn.CallPacked(args.data(), static_cast<int32_t>(args.size()), &result);
    device.Sync();
    return result;
  };
  std::vector<ffi::Tensor> outs = Outputs(call());
  for (ffi::Tensor& out : outs) out = device.ToHost(out);
  for (size_t k = 0; k < outs.size(); ++k) {
    const DLTensor* t = outs[k].GetDLTensorPtr();
    if (t->dtype.code != kDLFloat || t->dtype.bits != 32 || t->device.device_type != kDLCPU ||
        !outs[k].IsContiguous()) {
      throw std::runtime_error("output " + std::to_string(k) + " is not a contiguous float32 CPU tensor");
    }
    std::vector<int64_t> shape(t->shape, t->shape + t->ndim);
    const char* first = static_cast<const char*>(t->data) + t->byte_offset;
    WriteNpy(OutputPath(positional[2], k), shape, reinterpret_cast<const float*>(first),
             static_cast<size_t>(outs[k].numel()));
  }

  if (repeat > 0) {
    std::vector<double> ms;
    for (long r = 0; r < repeat; ++r) {
      auto start = std::chrono::steady_clock::now();
      call();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    double sum = 0;
    for (double v : ms) sum += v;
    std::printf("timing: runs=%ld mean_ms=%.4f min_ms=%.4f max_ms=%.4f\n", repeat, sum / repeat,
                *std::min_element(ms.begin(), ms.end()), *std::max_element(ms.begin(), ms.end()));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "runner: error: " << e.what() << "\n";
    return 2;
  } catch (const ffi::Error& e) {
    std::string message = e.message();
    std::cerr << "runner: error: " << e.kind() << ": " << message.substr(0, message.find('\n')) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "runner: error: " << e.what() << "\n";
    return 1;
  }
}
