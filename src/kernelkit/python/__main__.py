from .kernel import PythonKernel

if __name__ == "__main__":
    PythonKernel.main()
