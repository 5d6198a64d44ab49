package dev.mtnet.decoder;

/** A float tensor as LiteRT returns it (row-major data + shape), with the axis permutation to mtnet's layout. */
public final class Tensor {
    public final float[] data;
    public final int[] shape;

    public Tensor(float[] data, int[] shape) {
        int n = 1;
        for (int d : shape) n *= d;
        if (n != data.length) throw new IllegalArgumentException("tensor data has " + data.length + " values, shape needs " + n);
        this.data = data;
        this.shape = shape.clone();
    }

    /** numpy.transpose(this, perm): out.shape[k] = shape[perm[k]]. */
    public Tensor permute(int[] perm) {
        boolean identity = true;
        for (int k = 0; k < perm.length; k++) identity &= perm[k] == k;
        if (identity) return this;
        int r = shape.length;
        int[] outShape = new int[r];
        for (int k = 0; k < r; k++) outShape[k] = shape[perm[k]];
        int[] inStride = new int[r];
        int s = 1;
        for (int k = r - 1; k >= 0; k--) { inStride[k] = s; s *= shape[k]; }
        int[] step = new int[r];
        for (int k = 0; k < r; k++) step[k] = inStride[perm[k]];
        float[] out = new float[data.length];
        int[] idx = new int[r];
        int src = 0;
        for (int o = 0; o < out.length; o++) {
            out[o] = data[src];
            for (int k = r - 1; k >= 0; k--) {
                idx[k]++;
                src += step[k];
                if (idx[k] < outShape[k]) break;
                src -= step[k] * outShape[k];
                idx[k] = 0;
            }
        }
        return new Tensor(out, outShape);
    }
}
