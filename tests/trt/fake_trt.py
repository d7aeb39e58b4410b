"""Small stand-ins for ``tensorrt`` and CUDA Python's runtime, injected into sys.modules by the tests.

They implement only what esrgan/export/tensorrt_build.py and esrgan/runtime/backends/tensorrt_backend.py
call, and record the calls. "Device memory" is host memory (numpy buffers addressed by their pointers),
so copies and the fake engine's compute (a nearest-neighbour x``scale`` upsampling) really move data
through the backend's code path.
"""

from __future__ import annotations

import ctypes
import enum
import json
import types

import numpy as np


class _Err(enum.Enum):
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35


class _Kind(enum.Enum):
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


class FakeCudart(types.ModuleType):
    def __init__(self, devices: int = 1, name: str = "NVIDIA H200", cc: tuple[int, int] = (9, 0)) -> None:
        super().__init__("cuda.bindings.runtime")
        self.cudaError_t, self.cudaMemcpyKind = _Err, _Kind
        self.devices, self.name, self.cc = devices, name, cc
        self.memory: dict[int, np.ndarray] = {}
        self.fail_malloc = False
        self.streams = 0

    def cudaGetDeviceCount(self):
        if not self.devices:
            return (_Err.cudaErrorInsufficientDriver, None)
        return (_Err.cudaSuccess, self.devices)

    def cudaGetDeviceProperties(self, device):
        props = types.SimpleNamespace(name=self.name.encode() + b"\0\0", major=self.cc[0], minor=self.cc[1])
        return (_Err.cudaSuccess, props)

    def cudaSetDevice(self, device):
        return (_Err.cudaSuccess,)

    def cudaStreamCreate(self):
        self.streams += 1
        return (_Err.cudaSuccess, 1234)

    def cudaStreamDestroy(self, stream):
        self.streams -= 1
        return (_Err.cudaSuccess,)

    def cudaStreamSynchronize(self, stream):
        return (_Err.cudaSuccess,)

    def cudaMalloc(self, nbytes):
        if self.fail_malloc:
            return (_Err.cudaErrorMemoryAllocation, 0)
        buf = np.zeros(nbytes, dtype=np.uint8)
        self.memory[buf.ctypes.data] = buf
        return (_Err.cudaSuccess, buf.ctypes.data)

    def cudaFree(self, ptr):
        self.memory.pop(ptr)
        return (_Err.cudaSuccess,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        ctypes.memmove(dst, src, nbytes)
        return (_Err.cudaSuccess,)


def _enum(name: str, **members: int) -> type:
    return enum.IntEnum(name, members)  # pybind11 enums convert with int() too


class FakeTensorRT(types.ModuleType):
    """``tensorrt`` with a Builder/OnnxParser/Runtime good enough to build and run a fake engine."""

    def __init__(self, version: str = "11.4.0.106", scale: int = 4) -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        self.scale = scale
        self.parse_errors: list[tuple[int, str, str, str]] = []  # (node, name, op, desc)
        self.calls: dict[str, object] = {}
        self.NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", STRONGLY_TYPED=1)
        self.MemoryPoolType = _enum("MemoryPoolType", WORKSPACE=0)
        self.TensorIOMode = _enum("TensorIOMode", NONE=0, INPUT=1, OUTPUT=2)
        self.DataType = _enum("DataType", FLOAT=0, HALF=1)
        fake = self

        class Logger:
            WARNING = 2

            def __init__(self, severity):
                fake.calls["logger_severity"] = severity

        class Network:
            def __init__(self, flags):
                fake.calls["network_flags"] = flags
                self.num_inputs = 1

            def get_input(self, i):
                return types.SimpleNamespace(name="input", shape=(-1, 3, -1, -1))

        class Parser:
            def __init__(self, network, logger):
                self.errors = fake.parse_errors

            def parse_from_file(self, path):
                fake.calls["parsed"] = path
                return not self.errors

            @property
            def num_errors(self):
                return len(self.errors)

            def get_error(self, i):
                node, name, op, desc = self.errors[i]
                return types.SimpleNamespace(
                    node=lambda: node, node_name=lambda: name, node_operator=lambda: op, desc=lambda: desc
                )

        class Cache:
            def __init__(self, data):
                self.data = bytes(data)

            def serialize(self):
                return memoryview(self.data + b"+")

        class Config:
            builder_optimization_level = 3

            def set_memory_pool_limit(self, pool, size):
                fake.calls["pool"] = (pool, size)

            def create_timing_cache(self, data):
                fake.calls["timing_cache_in"] = bytes(data)
                return Cache(data)

            def set_timing_cache(self, cache, ignore_mismatch):
                self.cache = cache

            def get_timing_cache(self):
                return self.cache

            def add_optimization_profile(self, profile):
                fake.calls["profile"] = profile.shapes

        class Profile:
            def set_shape(self, name, lo, opt, hi):
                self.shapes = {"name": name, "min": tuple(lo), "opt": tuple(opt), "max": tuple(hi)}

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                return Network(flags)

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                fake.calls["opt_level"] = config.builder_optimization_level
                p = fake.calls["profile"]
                return memoryview(b"ENGINE" + json.dumps({k: list(p[k]) for k in ("min", "opt", "max")}).encode())

        class Context:
            def __init__(self, engine):
                self.engine, self.shape, self.addresses = engine, None, {}

            def set_input_shape(self, name, shape):
                self.shape = tuple(shape)
                return True

            def get_tensor_shape(self, name):
                n, c, h, w = self.shape
                return (n, c, h * fake.scale, w * fake.scale) if name == "output" else self.shape

            def set_tensor_address(self, name, ptr):
                self.addresses[name] = ptr

            def execute_async_v3(self, stream):
                n, c, h, w = self.shape
                src = np.ctypeslib.as_array((ctypes.c_float * (n * c * h * w)).from_address(self.addresses["input"]))
                out = src.reshape(self.shape).repeat(fake.scale, 2).repeat(fake.scale, 3)
                dst = np.ctypeslib.as_array((ctypes.c_float * out.size).from_address(self.addresses["output"]))
                dst[:] = out.ravel()
                return True

        class Engine:
            def __init__(self, profile):
                self.profile = profile
                self.num_io_tensors = 2

            def get_tensor_name(self, i):
                return ("input", "output")[i]

            def get_tensor_mode(self, name):
                return fake.TensorIOMode.INPUT if name == "input" else fake.TensorIOMode.OUTPUT

            def get_tensor_dtype(self, name):
                return fake.DataType.FLOAT

            def get_tensor_profile_shape(self, name, index):
                return [tuple(self.profile[k]) for k in ("min", "opt", "max")]

            def create_execution_context(self):
                return Context(self)

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                if not bytes(data).startswith(b"ENGINE"):
                    return None
                return Engine(json.loads(bytes(data)[len(b"ENGINE"):]))

        self.Logger, self.Builder, self.OnnxParser, self.Runtime = Logger, Builder, Parser, Runtime
        self.Dims = tuple
