from ipykernel.kernelapp import IPKernelApp

from . import ApiKernel

IPKernelApp.launch_instance(kernel_class=ApiKernel)
