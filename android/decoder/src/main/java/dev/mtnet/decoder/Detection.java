package dev.mtnet.decoder;

/** One kept detection in original-image pixels. */
public final class Detection {
    public final float x1, y1, x2, y2, score;
    public final int label;
    public final String labelName;
    /** K x (x, y, visibility) in original-image pixels, or null without the pose task. */
    public final float[] keypoints;

    Detection(float x1, float y1, float x2, float y2, float score, int label, String labelName, float[] keypoints) {
        this.x1 = x1; this.y1 = y1; this.x2 = x2; this.y2 = y2;
        this.score = score; this.label = label; this.labelName = labelName; this.keypoints = keypoints;
    }
}
