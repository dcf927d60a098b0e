"""Motion models behind one protocol and registry (``registry``): ``shake2d`` (the random walk,
``walk``), ``camera3d`` (``blurgen.camera``) and kernel banks (``bank``)."""
